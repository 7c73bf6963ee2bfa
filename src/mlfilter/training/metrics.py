"""Validation metrics per task: MAE, MSE, Spearman, accuracy and macro-F1 of predicted labels, binary F1.

The predicted label of a regression head is its score rounded and clipped to ``0..K-1``; of a
classification head, its most probable class. Binary F1 counts a document as positive when its
label — the true one, or the predicted one — is at or above the task's ``threshold`` (FineWeb-Edu's
``int_score >= 3``). Missing labels (NaN) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, f1_score
from transformers import EvalPrediction

from mlfilter.params import TaskParams
from mlfilter.training.params import METRIC_NAMES


def predicted_labels(
    scores: np.ndarray, logits: np.ndarray, num_targets: Sequence[int], is_regression: bool
) -> np.ndarray:
    """Discrete labels ``[n, num_tasks]`` from the model's scores (regression) or class logits."""
    if is_regression:
        upper = np.asarray(num_targets, dtype=np.float64) - 1
        return np.clip(np.rint(scores), 0, upper).astype(np.int64)
    columns, start = [], 0
    for k in num_targets:
        columns.append(logits[:, start : start + k].argmax(-1))
        start += k
    return np.stack(columns, axis=-1).astype(np.int64)


def task_metrics(scores: np.ndarray, predicted: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """The metrics of one task on the documents that have a label."""
    present = ~np.isnan(labels)
    scores, predicted, labels = scores[present], predicted[present], labels[present]
    if len(labels) == 0:
        return {name: float("nan") for name in METRIC_NAMES}
    truth = np.rint(labels).astype(np.int64)
    errors = scores.astype(np.float64) - labels
    varies = np.ptp(scores) > 0 and np.ptp(labels) > 0
    spearman = float(spearmanr(scores, labels).statistic) if varies else 0.0
    return {
        "mae": float(np.abs(errors).mean()),
        "mse": float((errors**2).mean()),
        "spearman": spearman,
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "binary_f1": float(f1_score(labels >= threshold, predicted >= threshold, zero_division=0)),
    }


def all_metrics(
    scores: np.ndarray, logits: np.ndarray, labels: np.ndarray, tasks: Sequence[TaskParams], is_regression: bool
) -> dict[str, float]:
    """Flat ``{metric}_{task}`` metrics for every task plus their means over tasks, ``{metric}_mean``."""
    predicted = predicted_labels(scores, logits, [t.num_targets for t in tasks], is_regression)
    result: dict[str, float] = {}
    for index, task in enumerate(tasks):
        for name, value in task_metrics(
            scores[:, index], predicted[:, index], labels[:, index], task.threshold
        ).items():
            result[f"{name}_{task.name}"] = value
    for name in METRIC_NAMES:
        values = [result[f"{name}_{task.name}"] for task in tasks]
        result[f"{name}_mean"] = float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")
    return result


def nested_metrics(flat: dict[str, float], tasks: Sequence[TaskParams]) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` (plus ``mean``) from the flat form of :func:`all_metrics`."""
    return {
        group: {name: flat[f"{name}_{group}"] for name in METRIC_NAMES} for group in (*(t.name for t in tasks), "mean")
    }


def trainer_metrics(tasks: Sequence[TaskParams], is_regression: bool) -> Callable[[EvalPrediction], dict[str, float]]:
    """A ``compute_metrics`` function for ``transformers.Trainer`` (predictions are ``(logits, scores)``)."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits, scores = prediction.predictions[:2]
        labels = np.asarray(prediction.label_ids, dtype=np.float64)
        return all_metrics(np.asarray(scores), np.asarray(logits), labels, tasks, is_regression)

    return compute
