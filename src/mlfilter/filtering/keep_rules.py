"""Keep rules: which scored documents go to the output, and the named reason for each one dropped.

Thresholds decide per document: the task thresholds, or (``thresholds: calibrated``) the cuts on the
raw score that training calibrated on the validation split (``calibrated_thresholds`` in the model
config). Quantiles and token budgets rank documents within each language (or over the whole corpus) by
one task's score, best first, ties in input order, and keep a prefix:

- ``quantile``: the best ``floor(fraction × n)`` documents of a language with ``n`` documents;
- ``token_budget``: the longest best-first prefix whose tokens add up to at most the budget —
  ``max_tokens``, or ``fraction`` of the language's tokens.

Both are "at most" rules: a kept set never exceeds the fraction or the budget.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mlfilter.errors import MlfilterError
from mlfilter.filtering.params import KeepParams

DROP_REASONS = {
    "threshold": "below_threshold",
    "calibrated": "below_calibrated_threshold",
    "quantile": "below_quantile",
    "token_budget": "over_token_budget",
}
#: ``filter.keep.thresholds`` value that selects the model's calibrated cuts.
CALIBRATED = "calibrated"
UNKNOWN_LANGUAGE = "unknown"


def resolve_thresholds(
    keep: KeepParams,
    task_names: Sequence[str],
    task_thresholds: Mapping[str, float],
    calibrated: Sequence[float | None] | None = None,
) -> dict[str, float]:
    """The thresholds a ``threshold`` rule applies, by task name.

    ``keep.thresholds`` when given (its tasks must be the model's), else every model task's
    threshold from ``task_thresholds`` (the ``tasks`` list of params.yaml). With ``keep.thresholds:
    calibrated``, the model's calibrated cuts ``calibrated`` (one per task, in task order).

    Raises:
        MlfilterError: an unknown task, a task without a threshold, or calibrated cuts the model lacks.
    """
    if keep.thresholds == CALIBRATED:
        if calibrated is None:
            raise MlfilterError(
                "filter.keep.thresholds: calibrated, but the model has no calibrated cuts (retrain it with this "
                "version of mlfilter, or give thresholds per task)"
            )
        for name, cut in zip(task_names, calibrated, strict=True):
            if cut is None:
                raise MlfilterError(
                    f"filter.keep.thresholds: calibrated, but task {name!r} has no calibrated cut (its validation "
                    "split had no document on one side of the threshold); give thresholds per task"
                )
        return {name: float(cut) for name, cut in zip(task_names, calibrated, strict=True)}
    unknown = sorted(set(keep.thresholds) - set(task_names))
    if unknown:
        raise MlfilterError(
            f"filter.keep.thresholds.{unknown[0]}: the model has no task {unknown[0]!r}; its tasks: "
            + ", ".join(task_names)
        )
    if keep.thresholds:
        return {name: keep.thresholds[name] for name in task_names if name in keep.thresholds}
    missing = [name for name in task_names if name not in task_thresholds]
    if missing:
        raise MlfilterError(
            f"filter.keep.thresholds: no threshold for task {missing[0]!r} (set filter.keep.thresholds "
            "or list the task under tasks: with a threshold)"
        )
    return {name: float(task_thresholds[name]) for name in task_names}


def threshold_mask(scores: np.ndarray, thresholds: Sequence[float | None], combine: str) -> np.ndarray:
    """Documents whose scores reach the thresholds (``None`` = task not used) on all or any tasks."""
    return cut_mask(scores, thresholds, combine)


def cut_mask(scores: np.ndarray, cuts: Sequence[float | None], combine: str) -> np.ndarray:
    """Documents whose raw scores ``[n, tasks]`` are ``>=`` the cuts (``None`` = task not used) on all or any tasks."""
    used = [i for i, t in enumerate(cuts) if t is not None]
    if not used:
        return np.ones(len(scores), dtype=bool)
    passed = scores[:, used] >= np.asarray([cuts[i] for i in used], dtype=np.float64)
    return passed.all(axis=1) if combine == "all" else passed.any(axis=1)


def rank_task_index(keep: KeepParams, task_names: Sequence[str]) -> int:
    """The column of the task whose score ranks documents for quantiles and budgets."""
    if keep.rank_by is None:
        return 0
    if keep.rank_by not in task_names:
        raise MlfilterError(
            f"filter.keep.rank_by: the model has no task {keep.rank_by!r}; its tasks: " + ", ".join(task_names)
        )
    return list(task_names).index(keep.rank_by)


def select_best(
    scores: np.ndarray,
    tokens: np.ndarray,
    groups: np.ndarray,
    *,
    rule: str,
    fraction: float,
    max_tokens: int | None = None,
) -> np.ndarray:
    """The documents a ``quantile`` or ``token_budget`` rule keeps, as a boolean mask in input order.

    ``scores`` rank documents (higher is better; NaN ranks last), ``groups`` holds a group code per
    document (its language, or one code for all); each group is selected on its own.
    """
    keep = np.zeros(len(scores), dtype=bool)
    ranked = np.where(np.isnan(scores), -np.inf, scores)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        order = members[np.lexsort((members, -ranked[members]))]
        if rule == "quantile":
            count = math.floor(fraction * len(order) + 1e-9)
        elif rule == "token_budget":
            budget = max_tokens if max_tokens is not None else fraction * float(tokens[members].sum())
            count = int(np.searchsorted(np.cumsum(tokens[order]), budget + 1e-9, side="right"))
        else:
            raise ValueError(f"select_best: not a ranking rule: {rule!r}")
        keep[order[:count]] = True
    return keep


def language_codes(languages: Sequence[str | None], per_language: bool) -> tuple[np.ndarray, list[str]]:
    """Integer group codes for documents and the group names (one group ``all`` unless per language)."""
    if not per_language:
        return np.zeros(len(languages), dtype=np.int64), ["all"]
    names = sorted({lang or UNKNOWN_LANGUAGE for lang in languages})
    index = {name: i for i, name in enumerate(names)}
    return np.fromiter((index[lang or UNKNOWN_LANGUAGE] for lang in languages), np.int64, len(languages)), names


@dataclass(frozen=True)
class KeepDecision:
    """The keep rule as applied to one shard: thresholds, a precomputed mask, or keep everything."""

    rule: str
    thresholds: tuple[float | None, ...] = ()
    combine: str = "all"
    mask: bytes = b""
    count: int = 0

    @classmethod
    def from_mask(cls, rule: str, mask: np.ndarray) -> KeepDecision:
        """A decision that keeps exactly the documents of ``mask`` (shard order)."""
        return cls(rule=rule, mask=np.packbits(mask).tobytes(), count=len(mask))

    @property
    def drop_reason(self) -> str:
        """The reason counted for a dropped document."""
        return DROP_REASONS.get(self.rule, "dropped")

    @functools.cached_property
    def _bits(self) -> np.ndarray:
        return np.unpackbits(np.frombuffer(self.mask, dtype=np.uint8), count=self.count).astype(bool)

    def keeps(self, scores: np.ndarray, offset: int = 0) -> np.ndarray:
        """Which documents are kept, given the scores ``[n, tasks]`` of a shard's documents from ``offset`` on."""
        if self.rule == "all":
            return np.ones(len(scores), dtype=bool)
        if self.rule == "threshold":
            return threshold_mask(scores, self.thresholds, self.combine)
        if self.rule == "calibrated":
            return cut_mask(scores, self.thresholds, self.combine)
        if offset + len(scores) > self.count:
            raise MlfilterError(f"keep rule: the shard has more than the {self.count} documents that were ranked")
        return self._bits[offset : offset + len(scores)]

    def check_size(self, documents: int) -> None:
        """Raise unless a ranking decision covered exactly ``documents`` documents."""
        if self.rule not in ("all", "threshold", "calibrated") and documents != self.count:
            raise MlfilterError(f"keep rule: {self.count} documents were ranked, the shard has {documents}")

    def fingerprint(self) -> str:
        """A digest that changes when the decision does."""
        text = f"{self.rule}|{self.thresholds}|{self.combine}|{self.count}|".encode() + self.mask
        return hashlib.sha256(text).hexdigest()[:16]
