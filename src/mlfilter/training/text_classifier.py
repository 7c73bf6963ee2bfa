"""Train a non-encoder classifier (``training.classifier: fasttext | tfidf | model2vec``) on the same labels as the
encoder.

The classifier kind comes from :data:`mlfilter.classifiers.base.IMPLEMENTATIONS`; it is fitted on the train
split (``model2vec``: distilled from ``training.base_model``, its ridge heads' strength chosen on val), measured on
val with the encoder's metrics (:func:`mlfilter.training.metrics.all_metrics`), calibrated on val like the encoder
(:mod:`mlfilter.training.calibration`: one cut per task on the raw score, stored in the model's config for
``filter.keep.thresholds: calibrated``), and saved to the same model folder (swapped in whole) with a model card;
DVCLive gets the same summary keys as the encoder's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from dvclive import Live

from mlfilter.atomic import write_json
from mlfilter.classifiers.base import classifier_class, store_calibration
from mlfilter.embedded import resolve_model
from mlfilter.errors import MlfilterError
from mlfilter.logs import progress_bar, quiet_model_loading
from mlfilter.params import TaskParams
from mlfilter.reports import Stopwatch, format_metric
from mlfilter.training.calibration import Calibration, calibrate_cut, reliability_table, write_reliability_csv
from mlfilter.training.data import LabeledData
from mlfilter.training.embedding_cache import encoder_fingerprint
from mlfilter.training.metrics import all_metrics, nested_metrics
from mlfilter.training.params import TrainingParams, greater_is_better, metric_key
from mlfilter.training.ridge_head import select_ridge
from mlfilter.training.run import CALIBRATION_DIR, TrainingResult, publish_folder

log = logging.getLogger(__name__)


def fit_options(kind: str, params: TrainingParams, seed: int) -> dict[str, Any]:
    """Keyword arguments of the kind's ``fit`` beyond texts, labels and tasks (its objective and seed)."""
    if kind == "fasttext":
        from mlfilter.classifiers.fasttext_model import FastTextConfig

        return {
            "config": FastTextConfig(objective="regression" if params.is_regression else "classification", seed=seed)
        }
    return {}


def fit_classifier(
    kind: str, train: LabeledData, val: LabeledData, *, params: TrainingParams, tasks: Sequence[TaskParams], seed: int
) -> tuple[Any, dict[str, Any]]:
    """The fitted classifier of ``kind`` and what its fit chose on val (empty for kinds that choose nothing).

    Raises:
        ValueError: from the classifier's ``fit`` (e.g. a task with a single label).
        MlfilterError: ``model2vec`` cannot load ``training.base_model``.
    """
    if kind == "model2vec":
        return fit_model2vec(train, val, params=params, tasks=tasks)
    model = classifier_class(kind).fit(
        train.texts,
        train.labels,
        task_names=[t.name for t in tasks],
        num_targets=[t.num_targets for t in tasks],
        **fit_options(kind, params, seed),
    )
    return model, {}


def distill_static_model(params: TrainingParams) -> Any:
    """A model2vec ``StaticModel`` distilled from ``params.base_model`` with ``params.model2vec`` (a forward pass of
    the encoder per vocabulary token). Its config names the base model as params do, not this machine's path
    (model2vec asks the hub for a hub id's languages, and only for a model that is not a local folder).

    Distilled models are kept in ``<embedding_cache_dir>/model2vec/<key>/`` (:func:`distillation_key`; the folder
    is renamed into place whole), so an experiment that changes only the heads or the data distils nothing.

    Raises:
        MlfilterError: the base model cannot be loaded.
    """
    from model2vec import StaticModel
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    location = resolve_model(params.base_model)
    quiet_model_loading()
    try:
        encoder = AutoModel.from_pretrained(location.path, **location.from_pretrained_kwargs())
        tokenizer = AutoTokenizer.from_pretrained(location.path, use_fast=True, **location.from_pretrained_kwargs())
    except (OSError, ValueError) as exc:
        raise MlfilterError(
            f"training.base_model: cannot load {params.base_model!r} from {location.path}: {str(exc).splitlines()[0]}"
        ) from exc
    cached = Path(params.embedding_cache_dir) / "model2vec" / distillation_key(encoder, tokenizer, params)
    if cached.is_dir():
        log.info("model2vec: distilled model reused from %s", cached)
        return StaticModel.from_pretrained(cached, force_download=False)
    with _labelled_distillation_bar():
        static = distill_from_model(encoder, tokenizer, **params.model2vec.distill_options())
    static.config["tokenizer_name"] = params.base_model
    static.base_model_name = params.base_model
    staging = cached.with_name(f".{cached.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    static.save_pretrained(staging)
    try:
        os.replace(staging, cached)
    except OSError:  # another run put the same model there first
        shutil.rmtree(staging, ignore_errors=True)
    return static


@contextmanager
def _labelled_distillation_bar() -> Iterator[None]:
    """model2vec draws its own bar over the vocabulary ("Encoding tokens"), which ``MLFILTER_PROGRESS=0`` cannot turn
    off: while this context is open, its bar is ours (:func:`mlfilter.logs.progress_bar`), labelled as the stage's."""
    from model2vec.distill import inference

    original = getattr(inference, "tqdm", None)
    if original is None:  # a model2vec that draws no bar there
        yield
        return

    def bar(*, total: int, **_: Any) -> Any:
        return progress_bar(desc="train: vocabulary tokens distilled", total=total, unit="token")

    inference.tqdm = bar
    try:
        yield
    finally:
        inference.tqdm = original


def distillation_key(encoder: Any, tokenizer: Any, params: TrainingParams) -> str:
    """A hash of what a distilled model depends on: the encoder's weights and tokenizer
    (:func:`~mlfilter.training.embedding_cache.encoder_fingerprint`), the base model's name (recorded in the
    model), the distillation settings and model2vec's version."""
    import model2vec

    digest = hashlib.blake2b(digest_size=16)
    digest.update(
        encoder_fingerprint(encoder, tokenizer, pooling="model2vec", max_length=0, precision="float32").encode()
    )
    settings = {"base_model": params.base_model, "version": model2vec.__version__, **params.model2vec.distill_options()}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def fit_model2vec(
    train: LabeledData, val: LabeledData, *, params: TrainingParams, tasks: Sequence[TaskParams]
) -> tuple[Any, dict[str, Any]]:
    """Distil static embeddings (:func:`distill_static_model`), fit a ridge head per task on the train documents'
    embeddings for each of ``params.model2vec.ridge_alphas`` and keep the strength best on val by
    ``params.best_metric`` (:func:`mlfilter.training.ridge_head.select_ridge`).

    Returns the classifier and its choice: ``{"metric", "value", "ridge_alpha", "ridge_alphas_tried",
    "vocabulary", "dims"}``, with the distillation's ``"distill_seconds"``.
    """
    from mlfilter.classifiers.model2vec_model import Model2VecClassifier, embed_texts

    watch = Stopwatch()
    static = distill_static_model(params)
    distill_seconds = watch.seconds
    config = params.model2vec
    metric = metric_key(params.best_metric, tuple(t.name for t in tasks))
    fit = select_ridge(
        embed_texts(static, train.texts, config.max_length),
        np.asarray(train.labels, dtype=np.float64),
        embed_texts(static, val.texts, config.max_length),
        np.asarray(val.labels, dtype=np.float64),
        tasks=tasks,
        alphas=config.ridge_alphas,
        metric=metric,
        higher_is_better=greater_is_better(metric),
        train_weights=train.weights,
    )
    model = Model2VecClassifier(
        [t.name for t in tasks], [t.num_targets for t in tasks], config, static, fit.coef, fit.intercept, fit.alpha
    )
    chosen = {
        "metric": metric,
        "value": fit.value,
        "ridge_alpha": fit.alpha,
        "ridge_alphas_tried": fit.tried,
        "distill_seconds": round(distill_seconds, 3),
        "vocabulary": len(static.tokens),
        "dims": int(static.dim),
    }
    return model, chosen


def render_card(
    kind: str,
    tasks: Sequence[TaskParams],
    val: dict[str, dict[str, float]],
    documents: int,
    calibrations: Sequence[Calibration],
    chosen: dict[str, Any],
) -> str:
    """A short model card: kind, tasks and their score columns, validation metrics, calibrated cuts, what the fit
    chose on val (``chosen``, as :func:`fit_classifier` returns it), how to load it."""
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
expected label); the filter writes them as `<task>_score` and the rounded `<task>_int_score`.{_choice_line(chosen)}

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


def _choice_line(chosen: dict[str, Any]) -> str:
    """The model card's sentence on what the fit chose on val (empty when it chose nothing)."""
    if "ridge_alpha" not in chosen:
        return ""
    return (
        f" Static embeddings: {chosen['vocabulary']} tokens × {chosen['dims']} dimensions, distilled with model2vec"
        f" (`static_model/` loads with `model2vec.StaticModel.from_pretrained`); ridge heads, L2 strength"
        f" {chosen['ridge_alpha']:g} chosen on val by {chosen['metric']} ({format_metric(chosen['value'])})."
    )


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
        MlfilterError: ``model2vec`` cannot load ``training.base_model``.
    """
    kind = params.classifier
    watch = Stopwatch()
    model, chosen = fit_classifier(kind, train, val, params=params, tasks=tasks, seed=seed)
    train_seconds = watch.seconds
    timings = {k: chosen.pop(k) for k in ("distill_seconds",) if k in chosen}
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
    card = render_card(kind, tasks, val_nested, len(train), calibrations, chosen)

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        store_calibration(staging, [c.cut for c in calibrations], calibrations[0].method)
        (staging / "README.md").write_text(card, encoding="utf-8")

    publish_folder(Path(output_dir), write)
    live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)
    live.log_params({"classifier": kind, "is_regression": params.is_regression, "seed": seed})
    if "ridge_alpha" in chosen:
        live.log_params({"ridge_alpha": chosen["ridge_alpha"]})
    for name, value in flat.items():
        if value is not None and np.isfinite(value):  # undefined metrics stay out (null in the summary)
            live.log_metric(f"val/{name}", value)
    live.next_step()
    for index, task in enumerate(tasks):
        rows = reliability_table(scores[:, index], np.asarray(val.labels[:, index], dtype=np.float64), task.threshold)
        write_reliability_csv(Path(live_dir) / CALIBRATION_DIR / f"{task.name}.csv", rows)
    summary: dict[str, Any] = {
        "val": val_nested,
        "calibration": {t.name: c.as_dict() for t, c in zip(tasks, calibrations, strict=True)},
        "data": {"train": {"documents": len(train)}, "val": {"documents": len(val)}},
        "throughput": {
            "path": kind,
            "train_seconds": round(train_seconds, 3),
            "train_docs_per_second": round(len(train) / max(train_seconds, 1e-9), 3),
            "val_docs_per_second": round(len(val) / max(val_seconds, 1e-9), 3),
            "total_seconds": round(watch.seconds, 3),
            **timings,
        },
    }
    if chosen:
        summary["best"] = chosen
    live.summary.update(summary)
    write_json(live.metrics_file, live.summary)  # DVCLive's own writer is neither strict nor atomic
    return TrainingResult(output_dir=Path(output_dir), path=kind, val_metrics=flat, summary=dict(live.summary))
