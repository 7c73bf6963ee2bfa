"""Typed params of the ``aggregate`` and ``split`` sections of ``params.yaml``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from mlfilter.params import ParamsError

Method = Literal["mean", "median", "majority", "min", "max", "dawid_skene"]
GoldMethod = Literal["mean", "median", "majority", "min", "max"]
TieBreak = Literal["lowest", "highest", "mean", "drop"]
Rounding = Literal["none", "round", "floor", "ceil"]


@dataclass(frozen=True)
class AggregateParams:
    """How the valid scores of every annotator and generation become one label per document and task.

    ``method``: ``mean``, ``median``, ``majority`` (vote over scores rounded to the nearest class),
    ``min``, ``max`` or ``dawid_skene`` (crowd-kit's EM estimate of each annotator's confusion matrix).
    ``tie_break``: how ``majority`` settles a tie: the ``lowest`` or ``highest`` tied class, their
    ``mean`` (then rounded by ``rounding``), or ``drop`` the document (counted as ``majority_tie``).
    ``weights``: annotator name → weight (default 1); ``0`` leaves an annotator out. ``dawid_skene``
    estimates reliabilities itself and uses weights only to leave annotators out.
    ``min_valid_scores``: fewer valid scores for a task than this → no label for the task.
    ``rounding``: ``round`` (half up), ``floor``, ``ceil`` or ``none`` (keep floats, for regression).
    ``missing_task``: a document without a label for some task is dropped (``drop``), or kept with
    ``null`` for that task (``null``; trainers mask it) as long as one task has a label.
    ``on_bad_annotation``: ``count`` malformed records, unknown ids, duplicates and out-of-range scores
    under a named reason in the report, or stop with an ``error`` naming file, line and field.
    ``task_names``: the original tool's prompt names (``meta_information.prompt_name``) → task names.
    ``gold_method``: how several reference scores for one document and task are combined.
    ``dawid_skene_iterations``: the most EM iterations of ``dawid_skene``.
    """

    method: Method = "mean"
    tie_break: TieBreak = "lowest"
    weights: dict[str, float] = field(default_factory=dict)
    min_valid_scores: int = 1
    rounding: Rounding = "round"
    missing_task: Literal["drop", "null"] = "drop"
    on_bad_annotation: Literal["count", "error"] = "count"
    task_names: dict[str, str] = field(default_factory=dict)
    gold_method: GoldMethod = "mean"
    dawid_skene_iterations: int = 100

    def __post_init__(self) -> None:
        for name, weight in self.weights.items():
            if not math.isfinite(weight) or weight < 0:
                raise ParamsError(f"aggregate.weights.{name}: expected a weight >= 0, got {weight}")
        if self.min_valid_scores < 1:
            raise ParamsError(f"aggregate.min_valid_scores: expected at least 1, got {self.min_valid_scores}")
        if self.dawid_skene_iterations < 1:
            raise ParamsError(
                f"aggregate.dawid_skene_iterations: expected at least 1, got {self.dawid_skene_iterations}"
            )

    def weight(self, annotator: str) -> float:
        """The weight of ``annotator`` (1 unless ``weights`` names it)."""
        return self.weights.get(annotator, 1.0)


@dataclass(frozen=True)
class SplitFractions:
    """Shares of the train, validation and test splits; they sum to 1."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        values = {"train": self.train, "val": self.val, "test": self.test}
        for name, value in values.items():
            if not 0 <= value <= 1:
                raise ParamsError(f"split.fractions.{name}: expected a share in [0, 1], got {value}")
        if not math.isclose(sum(values.values()), 1.0, abs_tol=1e-6):
            raise ParamsError(f"split.fractions: expected shares that sum to 1, got {sum(values.values())}")

    def as_dict(self) -> dict[str, float]:
        """The shares by split name, in split order."""
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class SplitParams:
    """How labelled documents are assigned to train/val/test.

    ``method``: ``hash`` (default) sends each document to the split where a seeded hash of its
    normalized text falls among the cumulative fractions: adding documents never moves existing
    ones, identical texts share a split, and every stratum gets the fractions in expectation.
    ``balanced`` ranks the hashes within each stratum and cuts at the fractions, so every stratum
    gets them to within one document — but adding documents can move documents near the cuts.
    ``stratify_by``: the strata ``balanced`` cuts and the report checks: ``language`` and/or
    ``label`` (the rounded labels of all tasks).
    ``seed``: mixed into the hash; change it to draw another split.
    """

    fractions: SplitFractions = field(default_factory=SplitFractions)
    method: Literal["hash", "balanced"] = "hash"
    stratify_by: tuple[Literal["language", "label"], ...] = ("language", "label")
    seed: int = 42
