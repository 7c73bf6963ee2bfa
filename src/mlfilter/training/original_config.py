"""Configs of the original tool's ``train_classifier`` / ``annotator_training_pipeline`` commands.

Its users keep their YAML files (OmegaConf interpolations such as ``${model.name}`` included): the
keys map onto :class:`TrainingParams`, the task list and the input/output paths. Keys that only
steered the original implementation are accepted and ignored with a log line; unknown keys are an
error naming the key. Any :class:`TrainingParams` field may also be set under ``training:``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mlfilter.params import ParamsError, TaskParams, convert
from mlfilter.training.params import METRIC_NAMES, TrainingParams

logger = logging.getLogger(__name__)

#: Keys of the original tool that have no effect here, with the reason shown to the user.
IGNORED: dict[str, str] = {
    "model.num_labels": "superseded by num_targets_per_task",
    "model.hidden_dropout_prob": "the encoder keeps its own dropout",
    "model.output_hidden_states": "not needed",
    "model.loading_params": "models load without remote code",
    "model.load_base_model_from_config": "the base model always loads its pretrained weights",
    "model.freeze_pooling_layer_params": "the encoder's pooler is not used",
    "tokenizer.truncation": "texts are always truncated to max_length",
    "tokenizer.padding": "batches are padded dynamically",
    "tokenizer.special_tokens": "the base model's tokenizer is used as is",
    "tokenizer.add_generation_prompt": "encoders take no chat template",
    "data.train_file_split": "files are read whole",
    "data.val_file_split": "files are read whole",
    "data.test_file_path": "the test split is never read during training",
    "data.test_file_split": "the test split is never read during training",
    "data.gt_file_path": "ground truth files are not used in training",
    "data.gt_file_split": "ground truth files are not used in training",
    "data.document_id_column": "ids are not needed for training",
    "data.num_processes": "tokenisation uses the fast tokenizer's own threads",
    "data.num_regressor_outputs": "superseded by num_tasks",
    "data.num_classes_per_output": "superseded by num_targets_per_task",
    "training.eval_strategy": "validation runs every epoch",
    "training.save_strategy": "checkpoints are saved every epoch",
    "training.load_best_model_at_end": "the best epoch on val is always kept",
    "training.greater_is_better": "derived from metric_for_best_model",
    "training.wandb_run_name": "metrics go to DVCLive",
    "training.wandb_project": "metrics go to DVCLive",
}

#: Original keys → TrainingParams fields.
RENAMED = {
    "model.name": "base_model",
    "model.freeze_base_model_parameters": "freeze_base_model_parameters",
    "model.freeze_encoder": "freeze_base_model_parameters",
    "model.is_regression": "is_regression",
    "model.classifier_dropout": "classifier_dropout",
    "tokenizer.max_length": "max_length",
    "data.text_column": "text_column",
    "data.label_column": "label_column",
    "training.is_regression": "is_regression",
    "training.num_epochs": "num_epochs",
    "training.epochs": "num_epochs",
    "training.logging_steps": "logging_steps",
}

#: Keys read by this module itself (tasks, paths, seed and the ones that need translation).
HANDLED = {
    "model.num_tasks",
    "model.num_targets_per_task",
    "data.num_tasks",
    "data.num_targets_per_task",
    "data.task_names",
    "data.output_names",
    "data.thresholds",
    "data.train_file_path",
    "data.val_file_path",
    "tokenizer.pretrained_model_name_or_path",
    "training.output_dir_path",
    "training.logging_dir_path",
    "training.seed",
    "training.use_bf16",
    "training.metric_for_best_model",
    "training.regression_loss",
}

#: Learning rate for fine-tuning when the config gives none (heads on a frozen encoder take TrainingParams'
#: larger default step).
DEFAULT_LR_FINE_TUNING = 3e-5
#: A fine-tuning config's values for these keys become the ``finetune_*`` params (``mode: finetune``).
FINETUNE_KEYS = ("learning_rate", "num_epochs", "max_length", "batch_size")


@dataclass(frozen=True)
class OriginalRun:
    """A training run described by an original-tool config."""

    params: TrainingParams
    tasks: tuple[TaskParams, ...]
    seed: int
    train_path: str
    val_path: str
    output_dir: Path
    live_dir: Path


def load_original_config(path: str | Path) -> OriginalRun:
    """Read an original-tool training config and translate it; errors name the file and the key."""
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except FileNotFoundError:
        raise ParamsError(f"{path}: config file not found") from None
    except (OmegaConfBaseException, ValueError) as exc:
        raise ParamsError(f"{path}: cannot read the config: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping with model/tokenizer/data/training sections")
    try:
        return _translate(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


def _flatten(raw: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ParamsError(f"{section}: expected a mapping, got {values!r}")
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    return flat


def _translate(raw: dict[str, Any]) -> OriginalRun:
    flat = _flatten(raw)
    fields = {f.name for f in dataclasses.fields(TrainingParams)}
    training: dict[str, Any] = {}
    for key, value in flat.items():
        if key in IGNORED:
            logger.info("config key %s is ignored: %s", key, IGNORED[key])
        elif key in RENAMED:
            training[RENAMED[key]] = value
        elif key in HANDLED:
            continue
        elif key.startswith("training.") and key.removeprefix("training.") in fields:
            training[key.removeprefix("training.")] = value
        else:
            known = sorted({*IGNORED, *RENAMED, *HANDLED} | {f"training.{f}" for f in fields})
            raise ParamsError(f"{key}: unknown config key; known keys: {', '.join(known)}")
    for key in ("model.name", "data.train_file_path", "data.val_file_path", "training.output_dir_path"):
        if flat.get(key) in (None, ""):
            raise ParamsError(f"{key}: missing required key")
    tokenizer = flat.get("tokenizer.pretrained_model_name_or_path")
    if tokenizer not in (None, flat["model.name"]):
        raise ParamsError(
            f"tokenizer.pretrained_model_name_or_path: {tokenizer!r} differs from model.name {flat['model.name']!r}; "
            "the base model's own tokenizer is used"
        )
    if "is_regression" not in training and "training.regression_loss" in flat:
        training["is_regression"] = flat["training.regression_loss"]
    if "training.use_bf16" in flat:
        training["precision"] = "auto" if convert(flat["training.use_bf16"], bool, "training.use_bf16") else "fp32"
    if "training.metric_for_best_model" in flat:
        training["best_metric"] = _metric(flat["training.metric_for_best_model"])
    output_dir = Path(str(flat["training.output_dir_path"]))
    training.setdefault("checkpoint_dir", str(output_dir / "checkpoints"))
    freeze = convert(training.pop("freeze_base_model_parameters", False), bool, "model.freeze_base_model_parameters")
    training["mode"] = "frozen" if freeze else "finetune"
    if not freeze:
        training.setdefault("learning_rate", DEFAULT_LR_FINE_TUNING)
        for key in FINETUNE_KEYS:
            if key in training:
                training[f"finetune_{key}"] = training.pop(key)
    params = convert(training, TrainingParams, "training")
    live_dir = Path(str(flat.get("training.logging_dir_path") or output_dir / "dvclive"))
    return OriginalRun(
        params=params,
        tasks=_tasks(flat),
        seed=convert(flat.get("training.seed", 42), int, "training.seed"),
        train_path=str(flat["data.train_file_path"]),
        val_path=str(flat["data.val_file_path"]),
        output_dir=output_dir / "final",
        live_dir=live_dir,
    )


def _first(flat: dict[str, Any], *keys: str) -> tuple[str, Any]:
    for key in keys:
        if flat.get(key) is not None:
            return key, flat[key]
    return keys[0], None


def _tasks(flat: dict[str, Any]) -> tuple[TaskParams, ...]:
    key, targets = _first(flat, "model.num_targets_per_task", "data.num_targets_per_task")
    if targets is None and flat.get("model.num_labels") is not None:
        key, targets = "model.num_labels", [flat["model.num_labels"]]
    if targets is None:
        raise ParamsError("data.num_targets_per_task: missing required key (a list with one count per task)")
    targets = list(convert(targets, tuple[int, ...], key))
    count_key, count = _first(flat, "model.num_tasks", "data.num_tasks")
    if count is not None and convert(count, int, count_key) != len(targets):
        raise ParamsError(f"{count_key}: {count} tasks, but {key} lists {len(targets)}")
    names_key, names = _first(flat, "data.task_names", "data.output_names")
    names = list(convert(names, tuple[str, ...], names_key)) if names is not None else None
    if names is None:
        names = ["score"] if len(targets) == 1 else [f"task_{i}" for i in range(len(targets))]
    if len(names) != len(targets):
        raise ParamsError(f"{names_key}: {len(names)} names for {len(targets)} tasks")
    thresholds = flat.get("data.thresholds")
    if thresholds is None:
        values = [float(k // 2) for k in targets]
    else:
        values = list(convert(thresholds, tuple[float, ...], "data.thresholds"))
        if len(values) != len(targets):
            raise ParamsError(f"data.thresholds: {len(values)} thresholds for {len(targets)} tasks")
    return tuple(
        TaskParams(name=name, prompt="", num_targets=k, threshold=t)
        for name, k, t in zip(names, targets, values, strict=True)
    )


def _metric(value: Any) -> str:
    """Translate the original ``metric_for_best_model`` (``eval_val_loss``, ``edu/mae``…) to ours."""
    name = str(value).removeprefix("eval_").removeprefix("val_").removeprefix("val/")
    if name == "loss":
        return "loss"
    if "/" in name:
        task, _, metric = name.partition("/")
        if metric in METRIC_NAMES:
            return f"{metric}_{task}"
        raise ParamsError(
            f"training.metric_for_best_model: {value!r} has no equivalent here; use loss or "
            f"<task>/<metric> with metric one of {', '.join(METRIC_NAMES)}"
        )
    return name
