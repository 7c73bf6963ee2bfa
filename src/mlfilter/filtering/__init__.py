"""The filter stage: score a corpus with a trained AnnotatorModel and keep the best documents.

- :func:`mlfilter.filtering.engine.score_texts` — scores of a list of texts (fast batching, input order);
- :func:`mlfilter.filtering.pipeline.run_filter` — the whole resumable, sharded stage.

Nothing is imported here, so reading ``filter`` params does not load torch.
"""
