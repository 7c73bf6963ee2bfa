"""Calibrated cuts on the classifier's raw score, chosen on the validation split, and reliability tables.

A task's binary question is "is the label at or above the task's threshold?" (FineWeb-Edu's
``int_score >= t``, :func:`mlfilter.scores.at_or_above`). A regression head trained on imbalanced
labels is compressed toward the mean, so rounding its score rarely reaches the threshold. The
calibrated cut is instead the raw-score value that best separates the validation documents whose
label is at or above the threshold: the cut of maximal F1, or — with a target precision — the lowest
cut (largest recall) whose precision reaches the target. The cut lies halfway between the lowest
validation score it keeps and the highest one it drops, so it does not hinge on one document.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass

import numpy as np

from mlfilter.atomic import atomic_open
from mlfilter.scores import at_or_above

#: Columns of a reliability table (one row per bin of validation scores).
RELIABILITY_COLUMNS = ("bin", "documents", "mean_score", "mean_label", "positive_rate")


@dataclass(frozen=True)
class Calibration:
    """The calibrated cut of one task and its figures on the documents it was chosen on.

    ``cut`` is None when those documents have none on one side of the threshold (nothing to separate).
    ``target_reached`` is False when a target precision was asked for and no cut reaches it; the cut is then
    the one of maximal F1. ``source`` names the scores: ``val`` (the model's scores on the validation split) or
    the out-of-sample scores of a closed-form head (leave-one-out over train and val).
    """

    threshold: float
    cut: float | None
    method: str
    precision: float
    recall: float
    f1: float
    documents: int
    positives: int
    target_reached: bool = True
    source: str = "val"

    def as_dict(self) -> dict[str, float | int | str | bool | None]:
        """Plain values for the metrics JSON and the model card."""
        return asdict(self)


def calibrate_cut(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    target_precision: float | None = None,
    *,
    source: str = "val",
) -> Calibration:
    """The raw-score cut (``score >= cut`` is positive) that best separates ``labels`` at ``threshold``.

    ``scores`` and ``labels`` are 1-D arrays of one task on documents the model did not train on (the validation
    split, or out-of-sample predictions named by ``source``); NaN labels are left out.
    Positives are labels at or above ``threshold`` (rounded half up, :func:`mlfilter.scores.at_or_above`).
    Without ``target_precision`` the cut maximises F1 = 2PR / (P + R); with it, the cut is the lowest
    whose precision P = TP / (TP + FP) is at least the target (ties: the higher F1).
    """
    present = ~np.isnan(labels)
    scores = np.asarray(scores, dtype=np.float64)[present]
    truth = at_or_above(labels[present], threshold)
    method = "max_f1" if target_precision is None else f"precision>={target_precision:g}"
    positives = int(truth.sum())
    if positives == 0 or positives == len(truth):
        return Calibration(
            threshold, None, method, 0.0, 0.0, 0.0, len(truth), positives, target_precision is None, source
        )
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], truth[order]
    # Candidate k keeps the k best documents; only cuts between distinct scores can be realised.
    last_of_value = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    true_positives = np.cumsum(hits)[last_of_value]
    kept = last_of_value + 1
    precision = true_positives / kept
    recall = true_positives / positives
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=true_positives > 0)
    reached = True
    if target_precision is None:
        best = int(np.argmax(f1))
    else:
        meets = np.flatnonzero(precision >= target_precision)
        reached = len(meets) > 0
        best = int(meets[np.lexsort((-f1[meets], -kept[meets]))[0]]) if reached else int(np.argmax(f1))
    lowest_kept = ranked[last_of_value[best]]
    below = ranked[last_of_value[best] + 1] if kept[best] < len(ranked) else lowest_kept - 1.0
    return Calibration(
        threshold=float(threshold),
        cut=float((lowest_kept + below) / 2),
        method=method,
        precision=float(precision[best]),
        recall=float(recall[best]),
        f1=float(f1[best]),
        documents=len(truth),
        positives=positives,
        target_reached=reached,
        source=source,
    )


def reliability_table(scores: np.ndarray, labels: np.ndarray, threshold: float, bins: int = 10) -> list[dict]:
    """A reliability diagram of one task: validation documents in ``bins`` equal-count bins of their score.

    Each row gives the bin's document count, mean predicted score, mean true label and the fraction of
    labels at or above ``threshold``. A calibrated regressor has mean_label ≈ mean_score in every bin
    (Niculescu-Mizil & Caruana, "Predicting good probabilities with supervised learning", ICML 2005,
    for the binned reliability diagram); a head compressed toward the mean shows a flatter score range
    than label range. NaN labels are left out; empty bins are skipped.
    """
    present = ~np.isnan(labels)
    scores, labels = np.asarray(scores, dtype=np.float64)[present], labels[present].astype(np.float64)
    order = np.argsort(scores, kind="stable")
    rows = []
    for index, members in enumerate(np.array_split(order, min(bins, max(len(order), 1)))):
        if len(members) == 0:
            continue
        rows.append(
            {
                "bin": index,
                "documents": len(members),
                "mean_score": round(float(scores[members].mean()), 6),
                "mean_label": round(float(labels[members].mean()), 6),
                "positive_rate": round(float(at_or_above(labels[members], threshold).mean()), 6),
            }
        )
    return rows


def write_reliability_csv(path: str | os.PathLike[str], rows: list[dict]) -> None:
    """Write a reliability table as CSV (atomically), for ``dvc plots``."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RELIABILITY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
