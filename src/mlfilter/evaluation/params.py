"""Typed params of the ``evaluate`` section of ``params.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlfilter.params import ParamsError

Aggregation = Literal["majority", "mean", "median", "min", "max"]
LongDocuments = Literal["truncate", "chunk"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class EvaluateParams:
    """How the evaluate stage measures agreement among annotators and the classifier's quality.

    Gold labels (``data/labels/gold.jsonl.zst``, written by the aggregate stage from ``data/gold``) are
    compared with every annotator and with the classifier when the file holds any.

    ``aggregation``: how each annotator's generations for a document become one score before
    annotators are compared (``majority`` votes over scores rounded to the nearest class; a tie
    gives the mean of the tied classes, as in the original tool).
    ``bootstrap_samples``/``confidence``: percentile bootstrap over documents for the confidence
    intervals (0 turns them off); the shared ``seed`` seeds the resampling.
    ``min_language_documents``: languages with fewer documents get counts but no per-language metrics.
    ``max_length``/``long_documents``/``device``/``dtype``: how the test split is scored, through the
    filter stage's scoring engine (keep them equal to ``filter.scoring`` to evaluate what the filter
    will do): tokens per text, longer texts cut to their head or scored as averaged windows,
    ``auto`` device (a GPU when there is one) and ``auto`` precision (bfloat16 on a GPU).
    ``sweep_step``: spacing of the classifier-score thresholds in the threshold sweep plot.
    ``self_agreement``: also report each annotator's agreement with itself across its ``n`` generations.
    ``baseline_max_train_documents``: the TF-IDF baseline is fitted on at most this many train documents,
    drawn by the shared seed (0: all), since its character n-gram analyzer is pure Python and slow on large splits.
    """

    aggregation: Aggregation = "mean"
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    min_language_documents: int = 20
    max_length: int = 512
    long_documents: LongDocuments = "truncate"
    device: str = "auto"
    dtype: Dtype = "auto"
    sweep_step: float = 0.1
    self_agreement: bool = True
    baseline_max_train_documents: int = 20_000

    def __post_init__(self) -> None:
        if self.bootstrap_samples < 0:
            raise ParamsError(f"evaluate.bootstrap_samples: expected 0 or more, got {self.bootstrap_samples}")
        if not 0 < self.confidence < 1:
            raise ParamsError(f"evaluate.confidence: expected a level in (0, 1), got {self.confidence}")
        if self.min_language_documents < 2:
            raise ParamsError(f"evaluate.min_language_documents: expected 2 or more, got {self.min_language_documents}")
        if self.max_length < 8:
            raise ParamsError(f"evaluate.max_length: expected at least 8, got {self.max_length}")
        if self.baseline_max_train_documents < 0:
            limit = self.baseline_max_train_documents
            raise ParamsError(f"evaluate.baseline_max_train_documents: expected 0 (all) or more, got {limit}")
        if not 0 < self.sweep_step <= 1:
            raise ParamsError(f"evaluate.sweep_step: expected a step in (0, 1], got {self.sweep_step}")
