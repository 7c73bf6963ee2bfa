"""The ``training:`` section of ``params.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from mlfilter.classifiers.model2vec_model import Model2VecConfig
from mlfilter.embedded import EMBEDDED_ENCODER
from mlfilter.params import ParamsError

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Mode = Literal["frozen", "finetune", "auto"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]
#: ``encoder``: an AnnotatorModel on ``base_model``; the others: a kind of :mod:`mlfilter.classifiers`.
ClassifierKind = Literal["encoder", "fasttext", "tfidf", "model2vec"]

#: Metrics computed per task on the validation split (see :mod:`mlfilter.training.metrics`).
METRIC_NAMES = ("mae", "mse", "spearman", "accuracy", "macro_f1", "binary_f1")
#: Metrics where a lower value is better; every other metric is better when higher.
LOWER_IS_BETTER = ("loss", "mae", "mse")


@dataclass(frozen=True)
class TrainingParams:
    """How the annotator model is trained: base encoder, heads, optimiser, selection and scratch folders.

    ``mode``: ``frozen`` trains the heads on a frozen encoder (``learning_rate``, ``num_epochs``,
    ``max_length``, ``batch_size``); ``finetune`` trains the whole model (the ``finetune_*`` values);
    ``auto`` trains both and keeps the one with the better validation ``best_metric``.
    ``pooling_layers``: the encoder hidden states pooled and concatenated for the heads (indices into
    ``hidden_states``: -1 the last layer, 0 the embeddings; :class:`~mlfilter.modeling.AnnotatorConfig`).
    ``frozen_head``: on the frozen fast path, ``gradient`` trains the heads with the optimiser; ``ridge`` fits
    linear regression heads in closed form on train and val, the L2 strength chosen from ``ridge_alphas`` by
    leave-one-out over both, the cuts calibrated on the leave-one-out predictions
    (:mod:`mlfilter.training.ridge_head`).
    ``calibration_precision``: None picks each task's calibrated cut by maximal validation F1, a value in
    (0, 1] the lowest cut whose validation precision reaches it.

    ``classifier`` other than ``encoder`` trains that kind of :mod:`mlfilter.classifiers` on the same labels
    instead (``is_regression`` picks its objective; the encoder, optimiser and head keys do not apply).
    ``model2vec`` distils static embeddings from ``base_model`` with the settings of ``model2vec``
    (:class:`~mlfilter.classifiers.model2vec_model.Model2VecConfig`) and fits ridge heads on them, the strength
    chosen on val by ``best_metric``."""

    classifier: ClassifierKind = "encoder"
    base_model: str = EMBEDDED_ENCODER
    mode: Mode = "auto"
    frozen_fast_path: bool = True
    is_regression: bool = True
    pooling: Literal["cls", "mean"] = "mean"
    pooling_layers: tuple[int, ...] = (-1,)
    frozen_head: Literal["gradient", "ridge"] = "gradient"
    ridge_alphas: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)
    head_hidden_size: int = 0
    classifier_dropout: float = 0.0
    regression_loss: Literal["mse", "huber"] = "mse"
    max_length: int = 512
    learning_rate: float = 3e-3
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    num_epochs: int = 30
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    lr_scheduler: Scheduler = "linear"
    group_by_length: bool = True
    precision: Precision = "auto"
    gradient_checkpointing: bool = False
    best_metric: str = "spearman_mean"
    early_stopping_patience: int = 5
    early_stopping_threshold: float = 0.0
    logging_steps: int = 10
    dataloader_num_workers: int = 0
    embed_batch_size: int = 64
    text_column: str = "text"
    label_column: str = "scores"
    checkpoint_dir: str = ".mlfilter/checkpoints"
    embedding_cache_dir: str = ".mlfilter/embeddings"
    keep_checkpoints: bool = False
    finetune_learning_rate: float = 1e-4
    finetune_num_epochs: int = 4
    finetune_max_length: int = 256
    finetune_batch_size: int = 16
    calibration_precision: float | None = None
    model2vec: Model2VecConfig = field(default_factory=Model2VecConfig)

    def __post_init__(self) -> None:
        positive = {
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "num_epochs": self.num_epochs,
            "logging_steps": self.logging_steps,
            "embed_batch_size": self.embed_batch_size,
            "learning_rate": self.learning_rate,
            "finetune_learning_rate": self.finetune_learning_rate,
            "finetune_num_epochs": self.finetune_num_epochs,
            "finetune_max_length": self.finetune_max_length,
            "finetune_batch_size": self.finetune_batch_size,
        }
        for key, value in positive.items():
            if value <= 0:
                raise ParamsError(f"training.{key}: expected a positive value, got {value}")
        checks = {
            "warmup_ratio": 0 <= self.warmup_ratio < 1,
            "classifier_dropout": 0 <= self.classifier_dropout < 1,
            "weight_decay": self.weight_decay >= 0,
            "head_hidden_size": self.head_hidden_size >= 0,
            "early_stopping_patience": self.early_stopping_patience >= 0,
            "dataloader_num_workers": self.dataloader_num_workers >= 0,
            "calibration_precision": self.calibration_precision is None or 0 < self.calibration_precision <= 1,
            "ridge_alphas": len(self.ridge_alphas) > 0 and all(a > 0 for a in self.ridge_alphas),
            "pooling_layers": len(self.pooling_layers) > 0
            and len(set(self.pooling_layers)) == len(self.pooling_layers),
        }
        for key, ok in checks.items():
            if not ok:
                raise ParamsError(f"training.{key}: value {getattr(self, key)!r} is out of range")
        if self.classifier == "model2vec" and not self.is_regression:
            raise ParamsError(
                "training.classifier: model2vec fits ridge regression heads; it needs is_regression: true"
            )
        if (
            self.frozen_head == "ridge"
            and self.mode != "finetune"
            and (not self.is_regression or self.head_hidden_size)
        ):
            raise ParamsError(
                "training.frozen_head: ridge fits linear regression heads; it needs is_regression: true and "
                "head_hidden_size: 0 (or use frozen_head: gradient)"
            )

    @property
    def freeze_base_model_parameters(self) -> bool:
        """True when the encoder stays frozen (``mode: frozen``)."""
        return self.mode == "frozen"

    @property
    def uses_fast_path(self) -> bool:
        """True when the heads train on cached embeddings of a frozen encoder."""
        return self.freeze_base_model_parameters and self.frozen_fast_path

    @property
    def uses_ridge_head(self) -> bool:
        """True when the frozen fast path fits the heads by ridge regression instead of training them."""
        return self.uses_fast_path and self.frozen_head == "ridge"

    def candidates(self) -> tuple[TrainingParams, ...]:
        """The runs this mode trains: one per concrete mode (``auto``: frozen, then finetune).

        A ``finetune`` run takes its learning rate, epochs, input length and batch size from the
        ``finetune_*`` values, so the params of every run read the same way downstream.
        """
        modes = ("frozen", "finetune") if self.mode == "auto" else (self.mode,)
        runs = []
        for mode in modes:
            if mode == "finetune":
                runs.append(
                    replace(
                        self,
                        mode=mode,
                        learning_rate=self.finetune_learning_rate,
                        num_epochs=self.finetune_num_epochs,
                        max_length=self.finetune_max_length,
                        batch_size=self.finetune_batch_size,
                    )
                )
            else:
                runs.append(replace(self, mode=mode))
        return tuple(runs)


def metric_key(best_metric: str, task_names: tuple[str, ...]) -> str:
    """Validate ``training.best_metric`` against the metrics that evaluation produces; return it without ``eval_``."""
    if "mean" in task_names:
        raise ParamsError("tasks: a task may not be named 'mean' (metric names use <metric>_mean for the task average)")
    name = best_metric.removeprefix("eval_")
    allowed = {"loss"} | {f"{m}_{t}" for m in METRIC_NAMES for t in (*task_names, "mean")}
    if name not in allowed:
        raise ParamsError(
            f"training.best_metric: unknown metric {best_metric!r}; use 'loss' or <metric>_<task|mean> with "
            f"metric one of {', '.join(METRIC_NAMES)} and task one of {', '.join(task_names)} (e.g. spearman_mean)"
        )
    return name


def greater_is_better(metric: str) -> bool:
    """Whether a higher value of ``metric`` (as returned by :func:`metric_key`) is better."""
    return not any(metric == m or metric.startswith(f"{m}_") for m in LOWER_IS_BETTER)
