"""Validation metrics per task: MAE, MSE, Spearman, accuracy and macro-F1 of predicted labels, binary F1.

The predicted label of a regression head is its score rounded half up and clipped to ``0..K-1``
(:func:`mlfilter.scores.to_int_score`); of a classification head, its most probable class (argmax). Binary
F1 counts a document as positive when its label — the true one, or the predicted one — is at or above the
task's ``threshold`` by :func:`mlfilter.scores.at_or_above` (FineWeb-Edu's ``int_score >= 3``). Missing labels
(NaN) are left out; a metric with no labelled document is undefined, and so is Spearman's ρ when the scores or
the labels are constant: NaN in the flat form, ``None`` with a reason in :func:`nested_metrics`. The ``Trainer``
never sees NaN (:func:`trainer_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, f1_score
from transformers import EvalPrediction

from mlfilter.params import TaskParams
from mlfilter.reports import ALL_TASKS, Figure
from mlfilter.scores import at_or_above, to_int_score
from mlfilter.training.params import METRIC_NAMES

#: Why a task's metrics are ``None`` in :func:`nested_metrics`.
NO_LABELS = "no document of the validation split has a label for this task"
#: Why a task's Spearman ρ is ``None`` in :func:`nested_metrics` while its other metrics are defined.
CONSTANT_RANKS = "the scores or the labels of the validation split are constant, so Spearman's ρ is undefined"


def predicted_labels(
    scores: np.ndarray, logits: np.ndarray, num_targets: Sequence[int], is_regression: bool
) -> np.ndarray:
    """Discrete labels ``[n, num_tasks]`` from the model's scores (regression) or class logits."""
    if is_regression:
        columns = [to_int_score(scores[:, i], k) for i, k in enumerate(num_targets)]
        return np.stack(columns, axis=-1).astype(np.int64)
    columns, start = [], 0
    for k in num_targets:
        columns.append(logits[:, start : start + k].argmax(-1))
        start += k
    return np.stack(columns, axis=-1).astype(np.int64)


def task_metrics(scores: np.ndarray, predicted: np.ndarray, labels: np.ndarray, task: TaskParams) -> dict[str, float]:
    """The metrics of one task on the documents that have a label (all NaN when none has)."""
    present = ~np.isnan(labels)
    scores, predicted, labels = scores[present], predicted[present], labels[present]
    if len(labels) == 0:
        return {name: float("nan") for name in METRIC_NAMES}
    truth = to_int_score(labels, task.num_targets).astype(np.int64)
    errors = scores.astype(np.float64) - labels
    varies = np.ptp(scores) > 0 and np.ptp(labels) > 0
    spearman = float(spearmanr(scores, labels).statistic) if varies else float("nan")
    return {
        "mae": float(np.abs(errors).mean()),
        "mse": float((errors**2).mean()),
        "spearman": spearman,
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "binary_f1": float(
            f1_score(at_or_above(labels, task.threshold), at_or_above(predicted, task.threshold), zero_division=0)
        ),
    }


def all_metrics(
    scores: np.ndarray, logits: np.ndarray, labels: np.ndarray, tasks: Sequence[TaskParams], is_regression: bool
) -> dict[str, float]:
    """Flat ``{metric}_{task}`` metrics for every task plus their means over tasks, ``{metric}_mean``."""
    predicted = predicted_labels(scores, logits, [t.num_targets for t in tasks], is_regression)
    result: dict[str, float] = {}
    for index, task in enumerate(tasks):
        for name, value in task_metrics(scores[:, index], predicted[:, index], labels[:, index], task).items():
            result[f"{name}_{task.name}"] = value
    for name in METRIC_NAMES:
        values = [result[f"{name}_{task.name}"] for task in tasks]
        result[f"{name}_mean"] = float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")
    return result


def nested_metrics(flat: dict[str, float], tasks: Sequence[TaskParams]) -> dict[str, dict[str, float | str | None]]:
    """``{task: {metric: value}}`` (plus ``mean``) from the flat form of :func:`all_metrics`, strict-JSON ready.

    An undefined metric (NaN) becomes ``None`` and its group gets an ``undefined`` reason: :data:`NO_LABELS` when
    every metric is undefined, else :data:`CONSTANT_RANKS` (only Spearman's ρ can be undefined on labelled data).
    """
    nested: dict[str, dict[str, float | str | None]] = {}
    for group in (*(t.name for t in tasks), "mean"):
        values = {name: flat[f"{name}_{group}"] for name in METRIC_NAMES}
        entry: dict[str, float | str | None] = {k: None if np.isnan(v) else v for k, v in values.items()}
        if all(v is None for v in entry.values()):
            entry["undefined"] = NO_LABELS
        elif any(v is None for v in entry.values()):
            entry["undefined"] = CONSTANT_RANKS
        nested[group] = entry
    return nested


def trainer_metrics(tasks: Sequence[TaskParams], is_regression: bool) -> Callable[[EvalPrediction], dict[str, float]]:
    """A ``compute_metrics`` function for ``transformers.Trainer`` (predictions are ``(logits, scores)``).

    Metrics of a task without labels in the validation split are left out, so neither the ``Trainer``'s logs nor
    DVCLive's ``metrics.json`` ever hold NaN. An undefined Spearman ρ of labelled data (constant scores or labels)
    counts as 0 here — no rank information — so that choosing the best epoch by it still works; the reported
    validation metrics (:func:`nested_metrics`) have it ``None`` with the reason.
    """

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits, scores = prediction.predictions[:2]
        labels = np.asarray(prediction.label_ids, dtype=np.float64)
        flat = all_metrics(np.asarray(scores), np.asarray(logits), labels, tasks, is_regression)
        for name, value in flat.items():
            group = name.removeprefix("spearman_")
            if name != group and np.isnan(value) and not np.isnan(flat[f"mae_{group}"]):
                flat[name] = 0.0
        return {name: value for name, value in flat.items() if not np.isnan(value)}

    return compute


def headline(summary: dict[str, Any], path: str, tasks: Sequence[TaskParams]) -> dict[str, dict[str, Figure]]:
    """The train stage's headline figures (:func:`mlfilter.reports.write_headline`) from its summary (DVCLive's
    ``metrics.json``): the model kept (``frozen`` / ``finetune`` of ``mode: auto``, else the path or classifier
    kind ``path``) and per task its validation Spearman, MAE and binary F1 at the task threshold (``None`` where
    undefined; the reason is in the summary)."""
    val = summary["val"]
    figures: dict[str, dict[str, Figure]] = {"mode": {ALL_TASKS: summary.get("selection", {}).get("chosen", path)}}
    for name, metric in (("val_spearman", "spearman"), ("val_mae", "mae"), ("val_f1_at_threshold", "binary_f1")):
        figures[name] = {task.name: val[task.name][metric] for task in tasks}
    return figures
