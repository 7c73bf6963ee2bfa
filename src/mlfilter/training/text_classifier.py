"""Train a non-encoder classifier (``training.classifier: fasttext | tfidf``) on the same labels as the encoder.

The classifier kind comes from :data:`mlfilter.classifiers.base.IMPLEMENTATIONS`; it is fitted on the train
split, measured on val with the encoder's metrics (:func:`mlfilter.training.metrics.all_metrics`), calibrated on val
like the encoder (:mod:`mlfilter.training.calibration`: one cut per task on the raw score, stored in the model's
config for ``filter.keep.thresholds: calibrated``), and saved to the same model folder (swapped in whole) with a
model card; DVCLive gets the same summary keys as the encoder's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from dvclive import Live

from mlfilter.atomic import write_json
from mlfilter.classifiers.base import classifier_class, store_calibration
from mlfilter.params import TaskParams
from mlfilter.reports import Stopwatch, format_metric
from mlfilter.training.calibration import Calibration, calibrate_cut, reliability_table, write_reliability_csv
from mlfilter.training.data import LabeledData
from mlfilter.training.metrics import all_metrics, nested_metrics
from mlfilter.training.params import TrainingParams
from mlfilter.training.run import CALIBRATION_DIR, TrainingResult, publish_folder


def fit_options(kind: str, params: TrainingParams, seed: int) -> dict[str, Any]:
    """Keyword arguments of the kind's ``fit`` beyond texts, labels and tasks (its objective and seed)."""
    if kind == "fasttext":
        from mlfilter.classifiers.fasttext_model import FastTextConfig

        return {
            "config": FastTextConfig(objective="regression" if params.is_regression else "classification", seed=seed)
        }
    return {}


def render_card(
    kind: str,
    tasks: Sequence[TaskParams],
    val: dict[str, dict[str, float]],
    documents: int,
    calibrations: Sequence[Calibration],
) -> str:
    """A short model card: kind, tasks and their score columns, validation metrics, calibrated cuts, how to load it."""
    rows = "\n".join(
        f"| {t.name} | 0..{t.num_targets - 1} | {t.name}_score, {t.name}_int_score | "
        f"{format_metric(val[t.name]['spearman'])} | {format_metric(val[t.name]['mae'])} | "
        f"{format_metric(val[t.name]['binary_f1'])} | {'none' if c.cut is None else f'{c.cut:.4f}'} | "
        f"{format_metric(c.f1)} |"
        for t, c in zip(tasks, calibrations, strict=True)
    )
    return f"""---
tags: [mlfilter, data-filtering, {kind}]
---

# mlfilter {kind} classifier

Trained on {documents} labelled documents by `training.classifier: {kind}`. Scores are in label units (the
expected label); the filter writes them as `<task>_score` and the rounded `<task>_int_score`.

| task | labels | filter columns | val Spearman | val MAE | val binary F1 | calibrated cut | val F1 at the cut |
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

Binary F1 counts a document positive when its score rounded half up reaches the task's threshold (FineWeb-Edu's
`int_score >= t`). The calibrated cut is the raw score that best separated the validation labels at or above the
threshold ({calibrations[0].method}); `filter.keep.thresholds: calibrated` keeps documents
whose raw score reaches it.

```python
from mlfilter.classifiers.base import load_classifier
scores = load_classifier("this/folder").predict(["some text"])  # shape (documents, tasks)
```
"""


def train_text_classifier(
    train: LabeledData,
    val: LabeledData,
    *,
    params: TrainingParams,
    tasks: Sequence[TaskParams],
    seed: int,
    output_dir: str | os.PathLike[str],
    live_dir: str | os.PathLike[str],
) -> TrainingResult:
    """Fit ``params.classifier`` on ``train``, measure it on ``val``, save it to ``output_dir``.

    Raises:
        ValueError: from the classifier's ``fit`` (e.g. a task with a single label).
    """
    kind = params.classifier
    cls = classifier_class(kind)
    watch = Stopwatch()
    model = cls.fit(
        train.texts,
        train.labels,
        task_names=[t.name for t in tasks],
        num_targets=[t.num_targets for t in tasks],
        **fit_options(kind, params, seed),
    )
    train_seconds = watch.seconds
    scoring = Stopwatch()
    scores = np.asarray(model.predict(val.texts), dtype=np.float64)
    val_seconds = scoring.seconds
    labels = np.asarray(val.labels, dtype=np.float64)
    flat = all_metrics(scores, scores, labels, tasks, is_regression=True)
    val_nested = nested_metrics(flat, tasks)
    calibrations = [
        calibrate_cut(scores[:, i], labels[:, i], task.threshold, params.calibration_precision)
        for i, task in enumerate(tasks)
    ]
    card = render_card(kind, tasks, val_nested, len(train), calibrations)

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        store_calibration(staging, [c.cut for c in calibrations], calibrations[0].method)
        (staging / "README.md").write_text(card, encoding="utf-8")

    publish_folder(Path(output_dir), write)
    live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)
    live.log_params({"classifier": kind, "is_regression": params.is_regression, "seed": seed})
    for name, value in flat.items():
        if value is not None and np.isfinite(value):  # undefined metrics stay out (null in the summary)
            live.log_metric(f"val/{name}", value)
    live.next_step()
    for index, task in enumerate(tasks):
        rows = reliability_table(scores[:, index], np.asarray(val.labels[:, index], dtype=np.float64), task.threshold)
        write_reliability_csv(Path(live_dir) / CALIBRATION_DIR / f"{task.name}.csv", rows)
    summary = {
        "val": val_nested,
        "calibration": {t.name: c.as_dict() for t, c in zip(tasks, calibrations, strict=True)},
        "data": {"train": {"documents": len(train)}, "val": {"documents": len(val)}},
        "throughput": {
            "path": kind,
            "train_seconds": round(train_seconds, 3),
            "train_docs_per_second": round(len(train) / max(train_seconds, 1e-9), 3),
            "val_docs_per_second": round(len(val) / max(val_seconds, 1e-9), 3),
            "total_seconds": round(watch.seconds, 3),
        },
    }
    live.summary.update(summary)
    write_json(live.metrics_file, live.summary)  # DVCLive's own writer is neither strict nor atomic
    return TrainingResult(output_dir=Path(output_dir), path=kind, val_metrics=flat, summary=dict(live.summary))
