"""Settings that make the whole pipeline run in a couple of minutes on 2 CPU cores."""

from __future__ import annotations

from typing import Any

#: Dotted params overrides: a tiny sample, short documents, few epochs, few bootstrap resamples.
TINY_PARAMS: dict[str, Any] = {
    "sample.extractor": "resiliparse",
    "sample.targets": {"en": 12, "fr": 6, "de": 6},
    "runtime.sample.workers": 1,
    "annotate.annotators.smollm2_generate.max_document_tokens": 96,
    "annotate.annotators.smollm2_logprobs.max_document_tokens": 96,
    "split.fractions": {"train": 0.5, "val": 0.25, "test": 0.25},
    "training.max_length": 64,
    "training.num_epochs": 4,
    "training.finetune_max_length": 64,
    "training.finetune_num_epochs": 1,
    "evaluate.bootstrap_samples": 20,
    "evaluate.min_language_documents": 2,
    "evaluate.max_length": 64,
    "filter.scoring.max_length": 64,
}
