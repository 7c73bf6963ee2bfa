"""Train an annotator model from labelled train/val data, save it with a model card, log to DVCLive.

:func:`train_annotator` picks the path: with ``freeze_base_model_parameters`` and
``frozen_fast_path`` the heads train on cached embeddings; otherwise the full model trains through
the ``Trainer`` (fine-tuning, or a frozen base that re-encodes every batch). A run interrupted after
an epoch resumes from its last checkpoint when started again with the same params and data.
"""

from __future__ import annotations

import hashlib
import json
import logging
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

from mlfilter.classifiers.base import ENCODER
from mlfilter.embedded import resolve_model
from mlfilter.errors import MlfilterError
from mlfilter.export import EXPORT_FOLDER, export_sequence_classifier
from mlfilter.modeling import AnnotatorModel
from mlfilter.params import TaskParams, to_plain
from mlfilter.reports import Stopwatch
from mlfilter.training.data import LabeledData, read_labeled
from mlfilter.training.frozen import Embedder, EmbeddingDataset, EmbeddingStats
from mlfilter.training.metrics import all_metrics, nested_metrics
from mlfilter.training.model_card import render_model_card
from mlfilter.training.params import TrainingParams, metric_key
from mlfilter.training.trainer import (
    PaddingCollator,
    TokenizedDataset,
    build_trainer,
    has_checkpoint,
    resolve_precision,
    training_arguments,
)

logger = logging.getLogger(__name__)

FAST_PATH = "frozen_embeddings"
TRAINER_PATH = "trainer"
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
            head_hidden_size=params.head_hidden_size,
            classifier_dropout=params.classifier_dropout,
            regression_loss=params.regression_loss,
        )
    except (OSError, ValueError) as exc:
        raise MlfilterError(
            f"training.base_model: cannot load {params.base_model!r} from {location.path}: {str(exc).splitlines()[0]}"
        ) from exc
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
    """Train, select the best epoch on val, save ``output_dir`` (model, tokenizer, card) and the DVCLive summary."""
    if len(train) == 0 or len(val) == 0:
        raise MlfilterError(f"training needs labelled documents in both splits (train: {len(train)}, val: {len(val)})")
    watch = Stopwatch()
    task_names = tuple(t.name for t in tasks)
    metric = metric_key(params.best_metric, task_names)
    set_seed(seed)
    model, tokenizer = load_base(params, tasks)
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
    train_watch = Stopwatch()
    trainer.train(resume_from_checkpoint=True if resume else None)
    train_seconds = train_watch.seconds
    initial_rates = [float(g.get("initial_lr", g["lr"])) for g in trainer.optimizer.param_groups]
    val_flat = _validate(trainer, val_set, tasks, params.is_regression)
    data = {"train": _data_summary(train, tasks), "val": _data_summary(val, tasks)}
    best = {
        "metric": metric,
        "value": trainer.state.best_metric,
        "global_step": trainer.state.best_global_step,
        "epochs_run": round(float(trainer.state.epoch or 0.0), 3),
    }
    val_nested = nested_metrics(val_flat, tasks)
    card = render_model_card(
        params=params, tasks=tasks, seed=seed, data=data, val_metrics=val_nested, best=best, path=path
    )
    save_model(model, tokenizer, card, Path(output_dir))
    documents_trained = len(train) * float(trainer.state.epoch or 0.0)
    summary_extra: dict[str, Any] = {
        "val": val_nested,
        "best": best,
        "data": data,
        "throughput": {
            "path": path,
            "train_seconds": round(train_seconds, 3),
            "train_docs_per_second": round(documents_trained / max(train_seconds, 1e-9), 3),
            "total_seconds": round(watch.seconds, 3),
        },
    }
    if embedding_stats is not None:
        summary_extra["throughput"]["embedding"] = embedding_stats.as_dict()
    else:
        tokens = train_set.num_tokens * float(trainer.state.epoch or 0.0)
        summary_extra["throughput"]["train_tokens_per_second"] = round(tokens / max(train_seconds, 1e-9), 3)
    live.summary.update(summary_extra)
    live.make_summary()
    if not params.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return TrainingResult(
        output_dir=Path(output_dir),
        path=path,
        val_metrics=val_flat,
        summary=dict(live.summary),
        initial_learning_rates=initial_rates,
        resumed=resume,
    )


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
    train = read_labeled(train_path, tasks, params.text_column, params.label_column)
    val = read_labeled(val_path, tasks, params.text_column, params.label_column)
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
        f"model saved to {result.output_dir} ({result.path} path): val spearman {mean['spearman']:.4f}, "
        f"mae {mean['mae']:.4f}, binary F1 {mean['binary_f1']:.4f}"
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
    embedder = Embedder(
        model,
        tokenizer,
        cache_dir=params.embedding_cache_dir,
        max_length=params.max_length,
        batch_size=params.embed_batch_size,
        precision=precision,
    )
    stats = EmbeddingStats()
    datasets = []
    for split, data in (("train", train), ("val", val)):
        embeddings, split_stats = embedder.embed(data.texts, desc=f"embed {split}")
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


def _validate(trainer: Trainer, val_set: Any, tasks: Sequence[TaskParams], is_regression: bool) -> dict[str, float]:
    prediction = trainer.predict(val_set)
    logits, scores = prediction.predictions[:2]
    labels = np.asarray(prediction.label_ids, dtype=np.float64)
    return all_metrics(np.asarray(scores), np.asarray(logits), labels, tasks, is_regression)


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
