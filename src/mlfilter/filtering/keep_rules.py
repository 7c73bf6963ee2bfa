"""Keep rules: which scored documents go to the output, and the named reason for each one dropped.

Thresholds decide per document by the project's one rule, :func:`mlfilter.scores.at_or_above`: a document
passes threshold ``t`` when its score rounded half up is ``>= t`` (FineWeb-Edu's ``int_score >= t``; a score
of 2.5 passes 3). ``raw_cut`` is the other rule under its own name: the raw score ``>= cut``; so are the cuts
on the raw score that training calibrated on the validation split (``thresholds: calibrated``, from
``calibrated_thresholds`` in the model config). Quantiles and token budgets rank documents within each
language (or over the whole corpus) by one task's score, best first, ties in input order, and keep a prefix:

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
from mlfilter.scores import at_or_above

DROP_REASONS = {
    "threshold": "below_threshold",
    "raw_cut": "below_raw_cut",
    "calibrated": "below_calibrated_threshold",
    "quantile": "below_quantile",
    "token_budget": "over_token_budget",
}
#: Rules that decide per document from its own scores.
CUT_RULES = ("threshold", "raw_cut", "calibrated")
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


def threshold_mask(
    scores: np.ndarray, thresholds: Sequence[float | None], combine: str, *, raw: bool = False
) -> np.ndarray:
    """Documents whose scores ``[n, tasks]`` reach the thresholds (``None`` = task not used) on all or any tasks.

    A score reaches ``t`` when :func:`~mlfilter.scores.at_or_above` says so (rounded half up, then ``>= t``), or,
    with ``raw``, when the score itself is ``>= t``. NaN (no score) never reaches a threshold.
    """
    used = [i for i, t in enumerate(thresholds) if t is not None]
    if not used:
        return np.ones(len(scores), dtype=bool)
    cuts = np.asarray([thresholds[i] for i in used], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        passed = scores[:, used] >= cuts if raw else at_or_above(scores[:, used], cuts)
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

    ``scores`` rank documents (higher is better), ``groups`` holds a group code per document (its language,
    or one code for all); each group is selected on its own. A document without a score (NaN: an empty
    text) is never kept and does not count in its group's size.
    """
    keep = np.zeros(len(scores), dtype=bool)
    for group in np.unique(groups):
        members = np.flatnonzero((groups == group) & ~np.isnan(scores))
        order = members[np.lexsort((members, -scores[members]))]
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

    def keeps(self, scores: np.ndarray, offset: int = 0, labels: np.ndarray | None = None) -> np.ndarray:
        """Which documents are kept, given the scores ``[n, tasks]`` of a shard's documents from ``offset`` on.

        ``labels`` ``[n, tasks]``: a classification head's argmax labels; the ``threshold`` rule then compares them,
        not the rounded expected values (raw cuts and rankings always read the scores).
        """
        if self.rule == "all":
            return np.ones(len(scores), dtype=bool)
        if self.rule == "threshold" and labels is not None:
            return threshold_mask(labels, self.thresholds, self.combine)
        if self.rule in CUT_RULES:
            return threshold_mask(scores, self.thresholds, self.combine, raw=self.rule != "threshold")
        if offset + len(scores) > self.count:
            raise MlfilterError(f"keep rule: the shard has more than the {self.count} documents that were ranked")
        return self._bits[offset : offset + len(scores)]

    def check_size(self, documents: int) -> None:
        """Raise unless a ranking decision covered exactly ``documents`` documents."""
        if self.rule not in ("all", *CUT_RULES) and documents != self.count:
            raise MlfilterError(f"keep rule: {self.count} documents were ranked, the shard has {documents}")

    def fingerprint(self) -> str:
        """A digest that changes when the decision does."""
        text = f"{self.rule}|{self.thresholds}|{self.combine}|{self.count}|".encode() + self.mask
        return hashlib.sha256(text).hexdigest()[:16]
