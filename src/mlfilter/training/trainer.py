"""The ``transformers.Trainer`` set-up shared by both training paths, and the tokenised-text datasets.

Both the full model (fine-tuning, or a frozen base re-encoding every batch) and the heads on cached
embeddings train through the same ``Trainer`` configuration: AdamW with warmup and weight decay,
gradient accumulation, evaluation on the validation split every epoch, the best checkpoint by a
named validation metric, early stopping, and DVCLive curves.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dvclive import Live
from torch.utils.data import Dataset
from tqdm.auto import tqdm
from transformers import (
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.integrations import DVCLiveCallback
from transformers.trainer_utils import has_length

from mlfilter.logs import progress_bar
from mlfilter.params import ParamsError, TaskParams
from mlfilter.training.metrics import trainer_metrics
from mlfilter.training.params import TrainingParams, greater_is_better, metric_key

log = logging.getLogger(__name__)

#: Training arguments recorded as DVCLive params (reports/train/params.yaml): the ones that shape a run.
LOGGED_ARGUMENTS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "warmup_steps",
    "weight_decay",
    "lr_scheduler_type",
    "optim",
    "seed",
    "data_seed",
    "bf16",
    "fp16",
    "train_sampling_strategy",
    "metric_for_best_model",
    "greater_is_better",
)
#: Below this many trainable parameters (heads only) the unfused AdamW is faster on CPU than the fused one.
SMALL_MODEL_PARAMETERS = 5_000_000


#: Validation metrics drawn as DVCLive curves, one plot per metric and task (the rest stay in metrics.json).
CURVE_METRICS = ("spearman", "mae", "binary_f1", "macro_f1")


def curve_keys(task_names: Sequence[str]) -> frozenset[str]:
    """Trainer log keys that become DVCLive curves: training and validation loss, and :data:`CURVE_METRICS`
    per task (plus their mean over tasks when there are several). Timings, throughputs, FLOPs and the epoch
    counter are left out: they change on every run and say nothing about the model."""
    names = [*task_names, "mean"] if len(task_names) > 1 else list(task_names)
    return frozenset({"loss", "eval_loss"} | {f"eval_{metric}_{name}" for metric in CURVE_METRICS for name in names})


class TrainingCurvesCallback(DVCLiveCallback):
    """The transformers DVCLive callback, logging only the curves people read and the arguments that shape a run.

    Logging every ``TrainingArguments`` field makes DVCLive re-read a long params file at each step; logging
    every Trainer value gives ~30 plots, several of them a single point (runtime, FLOPs).
    """

    def __init__(self, live: Live, task_names: Sequence[str]) -> None:
        super().__init__(live=live)
        self.keys = curve_keys(task_names)

    def setup(self, args: TrainingArguments, state: Any, model: Any) -> None:
        """Record the arguments of :data:`LOGGED_ARGUMENTS` as DVCLive params."""
        self._initialized = True
        if state.is_world_process_zero:
            values = args.to_dict()
            self.live.log_params({name: values[name] for name in LOGGED_ARGUMENTS})

    def on_log(
        self, args: TrainingArguments, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
    ) -> None:
        """Log the values of :func:`curve_keys` in ``logs`` as one DVCLive step (nothing when there are none)."""
        kept = {key: value for key, value in (logs or {}).items() if key in self.keys}
        if kept:
            super().on_log(args, state, control, logs=kept, **kwargs)


class TrainingProgress(TrainerCallback):
    """The Trainer's progress on mlfilter's bars: ``train: steps`` (optimisation steps) and, per evaluation,
    ``train: validation batches`` (no bar for a one-batch evaluation). It takes the place of transformers'
    ``ProgressCallback``, whose bars carry no label and which draws a ``1/1`` bar for each evaluation of a
    small validation set; the Trainer's log lines go to the log instead of through the bar."""

    def __init__(self) -> None:
        self.training_bar: tqdm | None = None
        self.prediction_bar: tqdm | None = None

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.training_bar = progress_bar(desc="train: steps", total=state.max_steps, unit="step")
            self.training_bar.update(state.global_step)

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if self.training_bar is not None:
            self.training_bar.update(state.global_step - self.training_bar.n)

    def on_prediction_step(
        self, args: TrainingArguments, state: Any, control: Any, eval_dataloader: Any = None, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero and has_length(eval_dataloader):
            if self.prediction_bar is None:
                total = len(eval_dataloader)
                self.prediction_bar = progress_bar(desc="train: validation batches", total=total, unit="batch")
            self.prediction_bar.update()

    def _close_prediction_bar(self) -> None:
        if self.prediction_bar is not None:
            self.prediction_bar.close()
            self.prediction_bar = None

    def on_evaluate(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_prediction_bar()

    def on_predict(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_prediction_bar()

    def on_log(
        self, args: TrainingArguments, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero and logs:
            shown = {key: f"{value:.4g}" if isinstance(value, float) else value for key, value in logs.items()}
            shown.pop("total_flos", None)
            log.info("train: step %d: %s", state.global_step, shown)

    def on_train_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if self.training_bar is not None:
            self.training_bar.close()
            self.training_bar = None


def resolve_precision(requested: str) -> str:
    """``auto`` → bf16 on a GPU that supports it, else fp16 on a GPU, else fp32 (CPU)."""
    on_gpu = torch.cuda.is_available()
    if requested == "auto":
        if not on_gpu:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested == "fp16" and not on_gpu:
        raise ParamsError("training.precision: fp16 needs a GPU; use auto, fp32 or bf16 on CPU")
    return requested


def training_arguments(
    params: TrainingParams,
    *,
    output_dir: str | os.PathLike[str],
    seed: int,
    task_names: Sequence[str],
    precision: str,
    group_by_length: bool,
    trainable_parameters: int,
) -> TrainingArguments:
    """The ``TrainingArguments`` for a run, from the typed params."""
    metric = metric_key(params.best_metric, tuple(task_names))
    small_on_cpu = trainable_parameters < SMALL_MODEL_PARAMETERS and not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.eval_batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        learning_rate=params.learning_rate,
        weight_decay=params.weight_decay,
        optim="adamw_torch" if small_on_cpu else "adamw_torch_fused",
        warmup_steps=params.warmup_ratio,
        lr_scheduler_type=params.lr_scheduler,
        num_train_epochs=params.num_epochs,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=params.logging_steps,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=greater_is_better(metric),
        save_total_limit=2,
        seed=seed,
        data_seed=seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        dataloader_num_workers=params.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        report_to="none",
        disable_tqdm=os.environ.get("MLFILTER_PROGRESS", "1") == "0",
    )


def build_trainer(
    model: torch.nn.Module,
    args: TrainingArguments,
    *,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    data_collator: Any,
    tasks: Sequence[TaskParams],
    params: TrainingParams,
    live: Live,
    processing_class: PreTrainedTokenizerBase | None = None,
) -> Trainer:
    """A ``Trainer`` with validation metrics, DVCLive logging and early stopping."""
    callbacks: list[Any] = [TrainingCurvesCallback(live, [task.name for task in tasks])]
    if params.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(params.early_stopping_patience, params.early_stopping_threshold))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        processing_class=processing_class,
        compute_metrics=trainer_metrics(tasks, params.is_regression),
        callbacks=callbacks,
    )
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(TrainingProgress())
    return trainer


def has_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a ``checkpoint-*`` the Trainer can resume from."""
    return folder.is_dir() and any(p.is_dir() and p.name.startswith("checkpoint-") for p in folder.iterdir())


class TokenizedDataset(Dataset):
    """Texts tokenised once (truncated to ``max_length``, unpadded) with their label rows and optional
    per-document loss weights."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        labels: np.ndarray,
        max_length: int,
        weights: np.ndarray | None = None,
    ) -> None:
        self.encodings = tokenizer(list(texts), truncation=True, max_length=max_length)
        self.labels = labels.astype(np.float32)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in self.encodings]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {key: self.encodings[key][index] for key in self.keys}
        item["labels"] = self.labels[index]
        if self.weights is not None:
            item["weights"] = self.weights[index]
        return item

    @property
    def num_tokens(self) -> int:
        """Tokens over all documents after truncation."""
        return sum(len(ids) for ids in self.encodings["input_ids"])


class PaddingCollator:
    """Pads token ids per batch (to a multiple of 8 on GPU) and stacks the float label rows (and weights)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.pad = tokenizer.pad
        self.multiple = 8 if torch.cuda.is_available() else None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        stacked = {
            key: torch.from_numpy(np.stack([f[key] for f in features]))
            for key in ("labels", "weights")
            if key in features[0]
        }
        inputs = [{k: v for k, v in f.items() if k not in stacked} for f in features]
        batch = dict(self.pad(inputs, padding=True, pad_to_multiple_of=self.multiple, return_tensors="pt"))
        batch.update(stacked)
        return batch
