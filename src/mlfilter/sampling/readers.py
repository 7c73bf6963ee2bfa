"""Input records → documents: WARC responses and WET conversions, and JSONL/Parquet document files.

Each reader yields one item per input record: a :class:`SampleDocument`, or a :class:`Dropped` naming
why the record gave no document. Errors that end a file early raise :class:`InputFileError`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import IO

from mlfilter.documents import document_from_record
from mlfilter.records import OnError, RecordFormatError, iter_records
from mlfilter.sampling.errors import InputFileError
from mlfilter.sampling.extract import ExtractionTimeout, Extractor, decode_html, time_limit
from mlfilter.sampling.filters import Dropped, SampleDocument
from mlfilter.sampling.warc import CONTENT_RECORD_TYPES, HTML_TYPES, TEXT_TYPES, WarcEntry, iter_warc_entries

Item = SampleDocument | Dropped


def document_id(entry: WarcEntry) -> str:
    """The WARC-Record-ID without its angle brackets, or — for a record without one — URL + digest."""
    if entry.record_id:
        return entry.record_id.strip("<>")
    key = f"{entry.url or ''} {entry.digest or hashlib.sha1(entry.payload or b'').hexdigest()}"
    return "sha1:" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()


class WarcDocumentReader:
    """WARC ``response``/``resource`` records with status 200 and an HTML payload → main text;
    WET ``conversion`` records → their text. Everything else is dropped under a named reason:
    ``record_type:<type>``, ``http_status:<code>``, ``undecodable_body`` (a chunked, gzip, deflate, br or
    zstd body that does not decode), ``not_html``, ``not_text``, ``extraction_error``, ``extraction_timeout``
    (a page taking longer than ``timeout_s``), ``no_text``.
    """

    def __init__(self, extractor: Extractor, timeout_s: float = 0.0) -> None:
        self.extractor = extractor
        self.timeout_s = timeout_s
        self.extracted = 0

    def read(self, raw: IO[bytes], path: str) -> Iterator[Item]:
        """One item per WARC record of the file ``path`` streamed from ``raw``."""
        self.extractor.start_file()
        for entry in iter_warc_entries(raw, path):
            yield self._document(entry, path)

    def _document(self, entry: WarcEntry, path: str) -> Item:
        if entry.record_type not in CONTENT_RECORD_TYPES:
            return Dropped(f"record_type:{entry.record_type}")
        if entry.http_status is not None and entry.http_status != 200:
            return Dropped(f"http_status:{entry.http_status}")
        if entry.undecodable is not None:
            return Dropped("undecodable_body")
        if entry.record_type == "conversion":
            if entry.content_type not in TEXT_TYPES or entry.payload is None:
                return Dropped("not_text")
            text = entry.payload.decode("utf-8", errors="replace")
        else:
            if entry.content_type not in HTML_TYPES or entry.payload is None:
                return Dropped("not_html")
            try:
                with time_limit(self.timeout_s):
                    text = self.extractor.extract(decode_html(entry.payload, entry.charset))
            except ExtractionTimeout:
                return Dropped("extraction_timeout")
            except Exception:  # any failure inside the extractor drops this page only
                return Dropped("extraction_error")
        text = text.strip()
        if not text:
            return Dropped("no_text")
        self.extracted += 1
        metadata: dict[str, object] = {"source": path, "offset": entry.offset}
        if entry.date:
            metadata["date"] = entry.date
        return SampleDocument(id=document_id(entry), text=text, url=entry.url, metadata=metadata)


class JsonDocumentReader:
    """JSONL/Parquet document files, with their keys renamed through ``fields`` (Document field → key).

    The document's own ``id`` is kept; its ``language`` (if any) moves to ``metadata.source_language``,
    as the sample identifies every language with the same model.
    """

    def __init__(self, fields: Mapping[str, str], on_error: OnError) -> None:
        self.fields = dict(fields)
        self.on_error = on_error
        self.extracted = 0

    def read(self, path: str) -> Iterator[Item]:
        """One item per line or row of ``path``; malformed ones are dropped under their reason (or raise)."""
        skipped: Counter[str] = Counter()
        try:
            for location, record in iter_records(path, on_error=self.on_error, skipped=skipped):
                try:
                    document = document_from_record(record, location, self.fields)
                except RecordFormatError as exc:
                    if self.on_error == "raise":
                        raise
                    yield Dropped(exc.reason)
                    continue
                text = document.text.strip()
                if not text:
                    yield Dropped("no_text")
                    continue
                self.extracted += 1
                metadata = {**document.metadata, "source": path, "line": location.line}
                if document.language:
                    metadata["source_language"] = document.language
                yield SampleDocument(id=document.id, text=text, url=document.url, metadata=metadata)
        except RecordFormatError as exc:
            raise InputFileError(str(exc), exc.reason) from None
        corrupt = skipped.pop("corrupt_file", 0)
        skipped.pop("invalid_utf8_replaced", 0)
        for reason, count in sorted(skipped.items()):
            yield Dropped(reason, count)
        if corrupt:
            raise InputFileError(f"{path}: corrupt or truncated file", "corrupt_file")
