"""The ``sample`` stage: from raw web data to a reproducible per-language sample of documents.

Sources (Common Crawl by crawl id, WARC/WET files, JSONL/Parquet documents) are read one file per
worker process; WARC responses are decoded and reduced to main text; every document gets a language
and a confidence; filters drop what is too short, too long, unconfident or unwanted; exact duplicates
(by id, normalized text, URL) are removed and each language is sampled by a seeded bottom-k, so the
result depends on the seed and the inputs only — never on the number of workers.
"""
