"""Scores against reference labels: a gold annotator (e.g. humans) or the test split's labels.

On the documents both have a score for: accuracy, per-class precision/recall/F1, macro-F1,
quadratic-weighted Cohen's κ and the confusion matrix on labels (scores rounded to the nearest
label); MAE and Spearman ρ on the scores; binary precision/recall/F1 at each threshold
(positive when the score rounded half up is at or above it, :func:`mlfilter.scores.at_or_above`: FineWeb-Edu's
``int_score >= t``, the rule of every stage). Metrics come from scikit-learn and SciPy. Macro-F1 averages
over the labels that occur in the reference or the prediction (scikit-learn's default); per-class
precision with no prediction of that class is ``null``, not 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    precision_recall_fscore_support,
)

from mlfilter.evaluation.agreement import Statistics, cohen_kappa, rank_correlation
from mlfilter.evaluation.ratings import LabelSpace, RatingTable, threshold_key
from mlfilter.scores import at_or_above


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def compare_scores(
    reference: np.ndarray, predicted: np.ndarray, space: LabelSpace, predicted_classes: np.ndarray | None = None
) -> dict[str, Any]:
    """Quality of ``predicted`` scores against ``reference`` labels (NaN = missing in either).

    MAE and Spearman ρ read the scores; accuracy, κ, macro-F1, per-class figures, the confusion matrix and the
    binary block read the predicted classes: ``predicted_classes`` when given (a classification head's argmax),
    else the scores rounded half up.
    """
    both = ~np.isnan(reference) & ~np.isnan(predicted)
    stats = Statistics()
    stats.values["documents"] = int(both.sum())
    if not both.any():
        stats.undefined["all"] = "no document has both a reference and a predicted score"
        return stats.result()
    ref, pred = reference[both], predicted[both]
    ref_classes = space.to_classes(ref).astype(np.int64)
    pred_classes = space.to_classes(pred if predicted_classes is None else predicted_classes[both]).astype(np.int64)
    labels = list(space.classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats.values["accuracy"] = float(accuracy_score(ref_classes, pred_classes))
        stats.values["mae"] = float(mean_absolute_error(ref, pred))
        stats.add("spearman", lambda: rank_correlation(ref, pred, "spearman"))
        stats.add("cohen_kappa_quadratic", lambda: cohen_kappa(ref_classes, pred_classes, labels, "quadratic"))
        stats.values["macro_f1"] = float(f1_score(ref_classes, pred_classes, average="macro", zero_division=0.0))
        precision, recall, f1, support = precision_recall_fscore_support(
            ref_classes, pred_classes, labels=labels, zero_division=np.nan
        )
    stats.values["per_class"] = {
        str(label): {
            "precision": _number(precision[i]),
            "recall": _number(recall[i]),
            "f1": _number(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    stats.values["confusion_matrix"] = {
        "labels": labels,
        "rows": "reference",
        "columns": "predicted",
        "counts": confusion_matrix(ref_classes, pred_classes, labels=labels).tolist(),
    }
    stats.values["binary"] = {
        threshold_key(t): binary_metrics(at_or_above(ref, t), at_or_above(pred_classes, t)) for t in space.thresholds()
    }
    return stats.result()


def binary_metrics(reference: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Precision, recall and F1 of boolean predictions (``null`` where undefined: no positives)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, _ = precision_recall_fscore_support(
            reference, predicted, average="binary", pos_label=True, zero_division=np.nan
        )
    return {
        "precision": _number(precision),
        "recall": _number(recall),
        "f1": _number(f1),
        "positives": int(reference.sum()),
        "predicted_positives": int(predicted.sum()),
    }


def gold_column(gold: RatingTable, doc_ids: Sequence[str]) -> np.ndarray:
    """The gold score of each of ``doc_ids`` (NaN where there is none); several gold raters are averaged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = np.nanmean(gold.values, axis=1) if gold.values.shape[1] else np.full(len(gold.doc_ids), np.nan)
    index = {doc: i for i, doc in enumerate(gold.doc_ids)}
    return np.array([merged[index[d]] if d in index else np.nan for d in doc_ids], dtype=np.float64)


def gold_report(table: RatingTable, reference: np.ndarray, source: str) -> dict[str, Any]:
    """Every rater of ``table`` compared with the gold ``reference`` scores (aligned to its documents)."""
    return {
        "source": source,
        "documents": int((~np.isnan(reference)).sum()),
        "raters": {rater: compare_scores(reference, table.column(rater), table.space) for rater in table.raters},
    }
