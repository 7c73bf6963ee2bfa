"""Classifier metrics that estimate the population from a sample drawn with unequal probabilities.

Each test document carries a weight ``w = 1 / π`` (:mod:`mlfilter.weights`). Every metric is a ratio of
weighted sums over the documents (the Hájek estimator; Särndal, Swensson & Wretman, *Model Assisted Survey
Sampling*, 1992, §5.7), so it estimates the value the metric would have on the whole population:

- MAE ``Σ w |y − ŝ| / Σ w``; accuracy, macro-F1 and quadratic κ on labels (scores rounded half up) with
  scikit-learn's ``sample_weight``;
- precision, recall and F1 at each threshold with "at or above" as :func:`mlfilter.scores.at_or_above`
  (FineWeb-Edu's ``int_score >= t``), and the estimated share of positives;
- Spearman ρ as the weighted Pearson correlation of weighted mid-ranks (each document ranked as if it
  occurred ``w`` times).

``effective_documents`` is Kish's effective sample size ``(Σ w)² / Σ w²``: how many equally weighted
documents the weighted estimate is worth.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, precision_recall_fscore_support

from mlfilter.evaluation.agreement import weighted_midranks
from mlfilter.evaluation.ratings import LabelSpace, threshold_key
from mlfilter.scores import at_or_above


def weighted_spearman(first: np.ndarray, second: np.ndarray, weights: np.ndarray) -> float | None:
    """Spearman ρ of two score arrays under document ``weights``; None when either is constant."""
    ranks = [weighted_midranks(np.unique(v, return_inverse=True)[1], weights) for v in (first, second)]
    total = weights.sum()
    da, db = (r - (weights * r).sum() / total for r in ranks)
    variance = (weights * da**2).sum() * (weights * db**2).sum()
    return float((weights * da * db).sum() / np.sqrt(variance)) if variance > 1e-12 else None


def population_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray,
    space: LabelSpace,
    predicted_classes: np.ndarray | None = None,
) -> dict:
    """Weighted quality of ``scores`` against ``labels`` (shape ``(documents,)``, NaN labels left out); the class
    metrics read ``predicted_classes`` when given (a classification head's argmax), else the rounded scores.

    Returns MAE, Spearman, accuracy, macro-F1, quadratic κ, ``binary`` (per threshold: precision, recall, F1,
    ``positive_share``), ``documents`` and ``effective_documents``; an undefined value is ``None``.
    """
    labelled = ~np.isnan(labels) & ~np.isnan(scores)
    y, s, w = labels[labelled], scores[labelled], weights[labelled]
    c = s if predicted_classes is None else predicted_classes[labelled]
    result: dict[str, Any] = {"weights": "inverse inclusion probability", "documents": int(labelled.sum())}
    if not labelled.any():
        return {**result, "undefined": "no labelled document"}
    y_class, s_class = space.to_classes(y).astype(np.int64), space.to_classes(c).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(y_class, s_class, labels=list(space.classes), weights="quadratic", sample_weight=w)
        result.update(
            {
                "effective_documents": float(w.sum() ** 2 / (w**2).sum()),
                "mae": float(np.average(np.abs(y - s), weights=w)),
                "spearman": weighted_spearman(y, s, w),
                "accuracy": float(accuracy_score(y_class, s_class, sample_weight=w)),
                "macro_f1": float(f1_score(y_class, s_class, average="macro", sample_weight=w, zero_division=0.0)),
                "cohen_kappa_quadratic": float(kappa) if np.isfinite(kappa) else None,
                "binary": {},
            }
        )
        for threshold in space.thresholds():
            truth, predicted = at_or_above(y, threshold), at_or_above(c, threshold)
            precision, recall, f1, _ = precision_recall_fscore_support(
                truth, predicted, average="binary", sample_weight=w, zero_division=np.nan
            )
            result["binary"][threshold_key(threshold)] = {
                "precision": float(precision) if np.isfinite(precision) else None,
                "recall": float(recall) if np.isfinite(recall) else None,
                "f1": float(f1) if np.isfinite(f1) else None,
                "positive_share": float(np.average(truth, weights=w)),
            }
    return result
