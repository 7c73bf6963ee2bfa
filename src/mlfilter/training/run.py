"""Train an annotator model from labelled train/val data, save it with a model card, log to DVCLive.

:func:`train_annotator` trains each candidate of ``training.mode`` (``frozen``, ``finetune``, or both
for ``auto``, keeping the better on val). A frozen encoder with ``frozen_fast_path`` trains the heads on
cached embeddings; otherwise the full model trains through the ``Trainer`` (fine-tuning, or a frozen
base that re-encodes every batch). The kept model gets calibrated cuts per task
(:mod:`mlfilter.training.calibration`) in its config and card. A run interrupted after an epoch
resumes from its last checkpoint when started again with the same params and data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dvclive import Live
from transformers import (
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from mlfilter.atomic import write_json
from mlfilter.classifiers.base import ENCODER
from mlfilter.embedded import resolve_model
from mlfilter.errors import MlfilterError
from mlfilter.export import EXPORT_FOLDER, export_sequence_classifier
from mlfilter.logs import quiet_model_loading
from mlfilter.modeling import AnnotatorModel
from mlfilter.params import TaskParams, to_plain
from mlfilter.reports import Stopwatch, format_metric
from mlfilter.training.calibration import calibrate_cut, reliability_table, write_reliability_csv
from mlfilter.training.data import LabeledData, read_labeled
from mlfilter.training.frozen import Embedder, EmbeddingDataset, EmbeddingStats
from mlfilter.training.metrics import all_metrics, nested_metrics
from mlfilter.training.model_card import render_model_card
from mlfilter.training.params import TrainingParams, greater_is_better, metric_key
from mlfilter.training.ridge_head import fit_ridge_heads
from mlfilter.training.trainer import (
    PaddingCollator,
    TokenizedDataset,
    build_trainer,
    has_checkpoint,
    resolve_precision,
    training_arguments,
)
from mlfilter.training.val_quality import validation_quality

logger = logging.getLogger(__name__)

FAST_PATH = "frozen_embeddings"
TRAINER_PATH = "trainer"
#: Reliability tables (one CSV per task) under the DVCLive folder, declared as a DVC plot.
CALIBRATION_DIR = "calibration"
#: The calibration source of ridge heads: their leave-one-out predictions over train and val.
LOO_SOURCE = "leave-one-out over train and val"
#: Params that do not change what a run computes, left out of the checkpoint key.
_NOT_IN_RUN_KEY = ("checkpoint_dir", "embedding_cache_dir", "keep_checkpoints", "dataloader_num_workers")


@dataclass
class TrainingResult:
    """What a training run produced: where the model is, how it scored on val, what it cost."""

    output_dir: Path
    path: str
    val_metrics: dict[str, float]
    summary: dict[str, Any]
    initial_learning_rates: list[float] = field(default_factory=list)
    resumed: bool = False


def load_base(params: TrainingParams, tasks: Sequence[TaskParams]) -> tuple[AnnotatorModel, PreTrainedTokenizerBase]:
    """A new :class:`AnnotatorModel` on the base encoder named in params, and the encoder's tokenizer."""
    location = resolve_model(params.base_model)
    quiet_model_loading()
    try:
        tokenizer = AutoTokenizer.from_pretrained(location.path, **location.from_pretrained_kwargs())
        model = AnnotatorModel.from_encoder(
            location.path,
            encoder_kwargs=location.from_pretrained_kwargs(),
            task_names=[t.name for t in tasks],
            num_targets_per_task=[t.num_targets for t in tasks],
            thresholds=[t.threshold for t in tasks],
            is_regression=params.is_regression,
            pooling=params.pooling,
            pooling_layers=params.pooling_layers,
            head_hidden_size=params.head_hidden_size,
            classifier_dropout=params.classifier_dropout,
            regression_loss=params.regression_loss,
        )
    except (OSError, ValueError) as exc:
        raise MlfilterError(
            f"training.base_model: cannot load {params.base_model!r} from {location.path}: {str(exc).splitlines()[0]}"
        ) from exc
    states = getattr(model.encoder.config, "num_hidden_layers", 0) + 1
    outside = [i for i in params.pooling_layers if not -states <= i < states]
    if outside:
        raise MlfilterError(
            f"training.pooling_layers: {outside[0]} is not a hidden state of {params.base_model!r}, which has "
            f"{states} (indices {-states}..{states - 1}; -1 is the last layer)"
        )
    # The encoder's config remembers where it was loaded from: record the name params give (a hub id or
    # embedded:…), not this machine's path, so clones save identical model folders and no path leaks.
    model.config.encoder["_name_or_path"] = params.base_model
    if params.freeze_base_model_parameters:
        model.freeze_encoder()
    return model, tokenizer


def run_key(
    params: TrainingParams, tasks: Sequence[TaskParams], seed: int, train: LabeledData, val: LabeledData
) -> str:
    """A hash of everything that determines a run; its checkpoints live under this name."""
    plain = {k: v for k, v in to_plain(params).items() if k not in _NOT_IN_RUN_KEY}
    blob = json.dumps(
        {
            "params": plain,
            "tasks": to_plain(tuple(tasks)),
            "seed": seed,
            "train": train.fingerprint(),
            "val": val.fingerprint(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class _Fit:
    """One trained candidate, kept in memory until the selection: model, validation outputs, costs."""

    params: TrainingParams
    model: AnnotatorModel
    tokenizer: PreTrainedTokenizerBase
    live: Live
    path: str
    val_flat: dict[str, float]
    val_scores: np.ndarray
    val_labels: np.ndarray
    best: dict[str, Any]
    throughput: dict[str, Any]
    initial_rates: list[float]
    resumed: bool
    #: Out-of-sample scores and labels ``[n, num_tasks]`` the cuts are calibrated on, and where they come from
    #: (default: the validation outputs above).
    calibration_scores: np.ndarray | None = None
    calibration_labels: np.ndarray | None = None
    calibration_source: str = "val"

    def calibration_data(self) -> tuple[np.ndarray, np.ndarray, str]:
        """Scores, labels and source name of the calibration (the validation outputs unless set)."""
        if self.calibration_scores is None or self.calibration_labels is None:
            return self.val_scores, self.val_labels, self.calibration_source
        return self.calibration_scores, self.calibration_labels, self.calibration_source


def train_annotator(
    train: LabeledData,
    val: LabeledData,
    *,
    params: TrainingParams,
    tasks: Sequence[TaskParams],
    seed: int,
    output_dir: str | os.PathLike[str],
    live_dir: str | os.PathLike[str],
) -> TrainingResult:
    """Train, select on val, calibrate the cuts, save ``output_dir`` (model, tokenizer, card) and the DVCLive summary.

    ``mode: auto`` trains a frozen-encoder head and a fine-tuned model and keeps the one with the better
    validation ``best_metric``; the other's files are discarded. Only ``train`` and ``val`` are read.
    """
    if len(train) == 0 or len(val) == 0:
        raise MlfilterError(f"training needs labelled documents in both splits (train: {len(train)}, val: {len(val)})")
    watch = Stopwatch()
    task_names = tuple(t.name for t in tasks)
    metric = metric_key(params.best_metric, task_names)
    for index, name in enumerate(task_names):
        if metric.endswith(f"_{name}") and np.isnan(val.labels[:, index]).all():
            raise MlfilterError(
                f"training.best_metric: {params.best_metric} is undefined, the validation split has no label for "
                f"task {name!r}; choose a metric of another task or the mean (e.g. spearman_mean)"
            )
    candidates = params.candidates()
    live_root = Path(live_dir)
    fits = []
    for candidate in candidates:
        own_live = live_root if len(candidates) == 1 else _candidate_live_dir(candidate)
        fits.append(_fit(candidate, train, val, tasks=tasks, seed=seed, metric=metric, live_dir=own_live))
    higher = greater_is_better(metric)
    chosen = max(fits, key=lambda f: _selection_value(f.best["value"], higher))
    selection = {
        "requested": params.mode,
        "chosen": chosen.params.mode,
        "metric": metric,
        "candidates": {f.params.mode: {"value": f.best["value"], **f.throughput} for f in fits},
    }
    scores, labels, source = chosen.calibration_data()
    calibrations = [
        calibrate_cut(scores[:, i], labels[:, i], task.threshold, params.calibration_precision, source=source)
        for i, task in enumerate(tasks)
    ]
    chosen.model.config.calibrated_thresholds = [c.cut for c in calibrations]
    chosen.model.config.calibration_method = calibrations[0].method
    quality = validation_quality(train, val, _ordered_val_scores(chosen, val), tasks, seed)
    for message in quality["warnings"]:
        logger.warning(message)
    data = {"train": _data_summary(train, tasks), "val": _data_summary(val, tasks)}
    val_nested = nested_metrics(chosen.val_flat, tasks)
    card = render_model_card(
        params=chosen.params,
        tasks=tasks,
        seed=seed,
        data=data,
        val_metrics=val_nested,
        best=chosen.best,
        path=chosen.path,
        calibration={t.name: c.as_dict() for t, c in zip(tasks, calibrations, strict=True)},
        selection=selection,
        quality=quality,
    )
    save_model(chosen.model, chosen.tokenizer, card, Path(output_dir))
    summary_extra: dict[str, Any] = {
        "val": val_nested,
        "best": chosen.best,
        "data": data,
        "selection": selection,
        "calibration": {t.name: c.as_dict() for t, c in zip(tasks, calibrations, strict=True)},
        "val_quality": quality,
        "throughput": {**chosen.throughput, "total_seconds": round(watch.seconds, 3)},
    }
    chosen.live.summary.update(summary_extra)
    write_json(chosen.live.metrics_file, chosen.live.summary)  # DVCLive's own writer is neither strict nor atomic
    for fit in fits:
        if Path(fit.live.dir) != live_root:
            if fit is chosen:
                _replace_live_dir(Path(fit.live.dir), live_root)
            shutil.rmtree(fit.live.dir, ignore_errors=True)
    for index, task in enumerate(tasks):
        rows = reliability_table(scores[:, index], labels[:, index], task.threshold)
        write_reliability_csv(live_root / CALIBRATION_DIR / f"{task.name}.csv", rows)
    return TrainingResult(
        output_dir=Path(output_dir),
        path=chosen.path,
        val_metrics=chosen.val_flat,
        summary=dict(chosen.live.summary),
        initial_learning_rates=chosen.initial_rates,
        resumed=chosen.resumed,
    )


def _fit(
    params: TrainingParams,
    train: LabeledData,
    val: LabeledData,
    *,
    tasks: Sequence[TaskParams],
    seed: int,
    metric: str,
    live_dir: Path,
) -> _Fit:
    """Train one concrete mode (``frozen`` or ``finetune``) and keep its best epoch on val."""
    task_names = tuple(t.name for t in tasks)
    set_seed(seed)
    model, tokenizer = load_base(params, tasks)
    if params.uses_ridge_head:
        return _fit_ridge(params, model, tokenizer, train, val, tasks=tasks, metric=metric, live_dir=live_dir)
    model.heads.init_from_label_prior(torch.from_numpy(train.labels))
    precision = resolve_precision(params.precision)
    checkpoints = Path(params.checkpoint_dir) / f"train-{run_key(params, tasks, seed, train, val)}"
    resume = has_checkpoint(checkpoints)
    if resume:
        logger.info("resuming from the checkpoints in %s", checkpoints)
    live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, resume=resume)
    args = training_arguments(
        params,
        output_dir=checkpoints,
        seed=seed,
        task_names=task_names,
        precision=precision,
        group_by_length=params.group_by_length and not params.uses_fast_path,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
    )
    trainer, train_set, val_set, embedding_stats = _prepare_trainer(
        model, tokenizer, train, val, args, params, tasks, live, precision
    )
    path = FAST_PATH if params.uses_fast_path else TRAINER_PATH
    logger.info("training mode %s (%s path)", params.mode, path)
    train_watch = Stopwatch()
    trainer.train(resume_from_checkpoint=True if resume else None)
    train_seconds = train_watch.seconds
    initial_rates = [float(g.get("initial_lr", g["lr"])) for g in trainer.optimizer.param_groups]
    val_flat, val_scores, val_labels = _validate(trainer, val_set, tasks, params.is_regression)
    best = {
        "metric": metric,
        "value": trainer.state.best_metric,
        "global_step": trainer.state.best_global_step,
        "epochs_run": round(float(trainer.state.epoch or 0.0), 3),
    }
    documents_trained = len(train) * float(trainer.state.epoch or 0.0)
    throughput: dict[str, Any] = {
        "path": path,
        "train_seconds": round(train_seconds, 3),
        "train_docs_per_second": round(documents_trained / max(train_seconds, 1e-9), 3),
    }
    if embedding_stats is not None:
        throughput["embedding"] = embedding_stats.as_dict()
    else:
        tokens = train_set.num_tokens * float(trainer.state.epoch or 0.0)
        throughput["train_tokens_per_second"] = round(tokens / max(train_seconds, 1e-9), 3)
    if not params.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return _Fit(
        params=params,
        model=model,
        tokenizer=tokenizer,
        live=live,
        path=path,
        val_flat=val_flat,
        val_scores=val_scores,
        val_labels=val_labels,
        best=best,
        throughput=throughput,
        initial_rates=initial_rates,
        resumed=resume,
    )


def _embedder(
    model: AnnotatorModel, tokenizer: PreTrainedTokenizerBase, params: TrainingParams, precision: str
) -> Embedder:
    """The frozen encoder's embedder as ``params`` configure it (cache folder, max length, batch size)."""
    return Embedder(
        model,
        tokenizer,
        cache_dir=params.embedding_cache_dir,
        max_length=params.max_length,
        batch_size=params.embed_batch_size,
        precision=precision,
    )


def _fit_ridge(
    params: TrainingParams,
    model: AnnotatorModel,
    tokenizer: PreTrainedTokenizerBase,
    train: LabeledData,
    val: LabeledData,
    *,
    tasks: Sequence[TaskParams],
    metric: str,
    live_dir: Path,
) -> _Fit:
    """The frozen fast path with ridge heads (:mod:`mlfilter.training.ridge_head`): embed once, fit in closed form.

    The heads are fitted on train and val; the validation figures are those of the leave-one-out predictions on
    the val documents (each from a fit that did not see it), and the cuts are calibrated on the leave-one-out
    predictions over train and val."""
    live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)
    embedder = _embedder(model, tokenizer, params, resolve_precision(params.precision))
    stats = EmbeddingStats()
    embedded = []
    for split, data in (("train", train), ("val", val)):
        embeddings, split_stats = embedder.embed(data.texts, desc=f"embed {split} documents")
        stats.add(split_stats)
        embedded.append(embeddings)
    watch = Stopwatch()
    fit = fit_ridge_heads(
        model,
        embedded[0],
        train.labels,
        embedded[1],
        val.labels,
        tasks=tasks,
        alphas=params.ridge_alphas,
        metric=metric,
        higher_is_better=greater_is_better(metric),
        train_weights=train.weights,
        val_weights=val.weights,
    )
    fit_seconds = watch.seconds
    model.eval()
    with torch.no_grad():
        fitted = model.forward_embeddings(torch.from_numpy(embedded[1])).scores.double().numpy()
    # Out-of-sample scores where a document has a label (the metrics read only those); the fitted model's elsewhere.
    loo_val = fit.loo_scores[len(train) :]
    val_scores = np.where(np.isnan(loo_val), fitted, loo_val)
    val_labels = np.asarray(val.labels, dtype=np.float64)
    val_flat = all_metrics(val_scores, val_scores, val_labels, tasks, is_regression=True)
    live.log_params({"frozen_head": "ridge", "ridge_alpha": fit.alpha})
    for name, value in val_flat.items():
        if value is not None and np.isfinite(value):
            live.log_metric(f"eval/{name}", value)
    live.next_step()
    best = {"metric": metric, "value": fit.value, "ridge_alpha": fit.alpha, "ridge_alphas_tried": fit.tried}
    throughput: dict[str, Any] = {
        "path": FAST_PATH,
        "train_seconds": round(fit_seconds, 3),
        "train_docs_per_second": round((len(train) + len(val)) * len(params.ridge_alphas) / max(fit_seconds, 1e-9), 3),
        "embedding": stats.as_dict(),
    }
    return _Fit(
        params=params,
        model=model,
        tokenizer=tokenizer,
        live=live,
        path=FAST_PATH,
        val_flat=val_flat,
        val_scores=val_scores,
        val_labels=val_labels,
        best=best,
        throughput=throughput,
        initial_rates=[],
        resumed=False,
        calibration_scores=fit.loo_scores,
        calibration_labels=np.concatenate([train.labels, val.labels]).astype(np.float64),
        calibration_source=LOO_SOURCE,
    )


def _ordered_val_scores(fit: _Fit, val: LabeledData) -> np.ndarray:
    """The kept model's validation scores ``[len(val), num_tasks]`` in the order of ``val``.

    The fast path predicts val in order; the Trainer may not (length-grouped batches), so a trained encoder
    scores val again here, in order, in batches of ``eval_batch_size``.
    """
    if fit.path == FAST_PATH:
        return fit.val_scores
    dataset = TokenizedDataset(fit.tokenizer, val.texts, val.labels, fit.params.max_length)
    collate = PaddingCollator(fit.tokenizer)
    model = fit.model.eval()
    device = next(model.parameters()).device
    scores = []
    with torch.inference_mode():
        for start in range(0, len(dataset), fit.params.eval_batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + fit.params.eval_batch_size, len(dataset)))])
            inputs = {k: v.to(device) for k, v in batch.items() if k not in ("labels", "weights")}
            scores.append(model(**inputs).scores.double().cpu().numpy())
    return np.concatenate(scores)


def _selection_value(value: float | None, higher_is_better: bool) -> float:
    """A candidate's best validation value as a number to maximise (a missing or NaN value loses)."""
    if value is None or math.isnan(value):
        return -math.inf
    return value if higher_is_better else -value


def _candidate_live_dir(params: TrainingParams) -> Path:
    """A scratch DVCLive folder for one ``auto`` candidate, beside the checkpoints."""
    return Path(params.checkpoint_dir) / f"live-{params.mode}"


def _replace_live_dir(source: Path, live_root: Path) -> None:
    """Move the chosen candidate's DVCLive files (curves, params, metrics) into the stage's DVCLive folder."""
    live_root.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        target = live_root / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        shutil.move(str(entry), str(target))


def train_from_files(
    train_path: str,
    val_path: str,
    *,
    params: TrainingParams,
    tasks: Sequence[TaskParams],
    seed: int,
    output_dir: str | os.PathLike[str],
    live_dir: str | os.PathLike[str],
) -> TrainingResult:
    """Read the train and val record files (never the test split) and :func:`train_annotator` on them."""
    integer = not params.is_regression
    train = read_labeled(train_path, tasks, params.text_column, params.label_column, integer_labels=integer)
    val = read_labeled(val_path, tasks, params.text_column, params.label_column, integer_labels=integer)
    logger.info("training on %d documents, validating on %d", len(train), len(val))
    if params.classifier != ENCODER:
        from mlfilter.training.text_classifier import train_text_classifier

        return train_text_classifier(
            train, val, params=params, tasks=tasks, seed=seed, output_dir=output_dir, live_dir=live_dir
        )
    return train_annotator(train, val, params=params, tasks=tasks, seed=seed, output_dir=output_dir, live_dir=live_dir)


def describe(result: TrainingResult) -> str:
    """One log line: where the model went and its main validation figures."""
    mean = result.summary["val"]["mean"]
    return (
        f"model saved to {result.output_dir} ({result.path} path): val spearman {format_metric(mean['spearman'])}, "
        f"mae {format_metric(mean['mae'])}, binary F1 {format_metric(mean['binary_f1'])}"
    )


def _prepare_trainer(
    model: AnnotatorModel,
    tokenizer: PreTrainedTokenizerBase,
    train: LabeledData,
    val: LabeledData,
    args: TrainingArguments,
    params: TrainingParams,
    tasks: Sequence[TaskParams],
    live: Live,
    precision: str,
) -> tuple[Trainer, Any, Any, EmbeddingStats | None]:
    """The Trainer of the chosen path, its train and val datasets, and (fast path) what embedding cost."""
    if not params.uses_fast_path:
        if params.gradient_checkpointing:
            # Recent transformers name it activation_checkpointing_enable; earlier 5.x releases only the old name.
            getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
        train_set = TokenizedDataset(tokenizer, train.texts, train.labels, params.max_length, train.weights)
        val_set = TokenizedDataset(tokenizer, val.texts, val.labels, params.max_length, val.weights)
        trainer = build_trainer(
            model,
            args,
            train_dataset=train_set,
            eval_dataset=val_set,
            data_collator=PaddingCollator(tokenizer),
            tasks=tasks,
            params=params,
            live=live,
            processing_class=tokenizer,
        )
        return trainer, train_set, val_set, None
    embedder = _embedder(model, tokenizer, params, precision)
    stats = EmbeddingStats()
    datasets = []
    for split, data in (("train", train), ("val", val)):
        embeddings, split_stats = embedder.embed(data.texts, desc=f"embed {split} documents")
        stats.add(split_stats)
        datasets.append(EmbeddingDataset(embeddings, data.labels, data.weights))
    trainer = build_trainer(
        model.heads,
        args,
        train_dataset=datasets[0],
        eval_dataset=datasets[1],
        data_collator=default_data_collator,
        tasks=tasks,
        params=params,
        live=live,
    )
    return trainer, datasets[0], datasets[1], stats


def _validate(
    trainer: Trainer, val_set: Any, tasks: Sequence[TaskParams], is_regression: bool
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """The flat validation metrics of the loaded best model, its raw scores and the labels, ``[n, num_tasks]`` each.

    Scores and labels are in the order the Trainer predicted them, which with length-grouped batches is not
    the order of ``val_set``: keep them together.
    """
    prediction = trainer.predict(val_set)
    logits, scores = prediction.predictions[:2]
    labels = np.asarray(prediction.label_ids, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    return all_metrics(scores, np.asarray(logits), labels, tasks, is_regression), scores, labels


def _data_summary(data: LabeledData, tasks: Sequence[TaskParams]) -> dict[str, Any]:
    return {
        "documents": len(data),
        "files": list(data.files),
        "counts": data.counts.as_dict(),
        "labels": {task.name: data.label_counts(i) for i, task in enumerate(tasks)},
    }


def save_model(model: AnnotatorModel, tokenizer: PreTrainedTokenizerBase, card: str, output_dir: Path) -> None:
    """Write model (safetensors), config, tokenizer and card to a temporary sibling folder, then swap it in."""

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # A fast tokenizer remembers the truncation/padding of its last call; save it neutral, so the
            # saved folder does not depend on which code path (or cache hit) touched it last.
            backend.no_truncation()
            backend.no_padding()
        tokenizer.save_pretrained(staging)
        (staging / "README.md").write_text(card, encoding="utf-8")
        export_sequence_classifier(model, tokenizer, staging / EXPORT_FOLDER)

    publish_folder(output_dir, write)


def publish_folder(output_dir: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary sibling folder of ``output_dir``, then swap it in as ``output_dir``."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.with_name(f".{output_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write(staging)
        if output_dir.exists():
            retired = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
            os.replace(output_dir, retired)
            os.replace(staging, output_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
