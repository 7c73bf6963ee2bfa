"""The training section of params.yaml: types, ranges and the best-metric name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from mlfilter.params import ParamsError, load_section
from mlfilter.training.params import TrainingParams, greater_is_better, metric_key
from mlfilter.training.trainer import resolve_precision


def test_learning_rate_written_by_dvc_exp_run_loads_as_float(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("training:\n  learning_rate: 2e-05\n  num_epochs: 3\n", encoding="utf-8")
    params = load_section("training", path)
    assert isinstance(params, TrainingParams)
    assert params.learning_rate == 2e-05 and isinstance(params.learning_rate, float)
    assert params.num_epochs == 3


def test_repository_params_yaml_has_a_valid_training_section() -> None:
    params = load_section("training", Path(__file__).parents[2] / "params.yaml")
    assert params.base_model == "embedded:SmolLM2-135M-Instruct"
    assert params.mode == "frozen" and params.candidates() == (params,)
    assert params.uses_ridge_head and params.pooling_layers == (10, 15, 20)
    frozen, finetune = dataclasses.replace(params, mode="auto").candidates()
    assert frozen.uses_ridge_head and not finetune.freeze_base_model_parameters and not finetune.uses_ridge_head


def test_modes_train_their_candidates_with_their_own_values() -> None:
    params = TrainingParams(
        mode="frozen", learning_rate=3e-3, num_epochs=30, max_length=512, finetune_learning_rate=1e-4
    )
    (frozen,) = params.candidates()
    assert frozen == params and frozen.uses_fast_path
    (tuned,) = TrainingParams(mode="finetune", finetune_max_length=128, finetune_batch_size=8).candidates()
    assert (tuned.mode, tuned.max_length, tuned.batch_size, tuned.learning_rate) == ("finetune", 128, 8, 1e-4)
    assert not tuned.freeze_base_model_parameters and not tuned.uses_fast_path
    first, second = TrainingParams(max_length=512).candidates()  # auto is the default
    assert (first.mode, first.max_length, first.learning_rate) == ("frozen", 512, 3e-3)
    assert (second.mode, second.max_length, second.num_epochs) == ("finetune", 256, 4)
    assert second.candidates() == (second,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("training:\n  lerning_rate: 1e-3\n", "training.lerning_rate: unknown key"),
        ("training:\n  pooling: max\n", "training.pooling: expected one of 'cls', 'mean'"),
        ("training:\n  batch_size: 0\n", "training.batch_size: expected a positive value"),
        ("training:\n  warmup_ratio: 1.5\n", "training.warmup_ratio: value 1.5 is out of range"),
        ("training:\n  mode: finetuned\n", "training.mode: expected one of 'frozen', 'finetune', 'auto'"),
        ("training:\n  freeze_base_model_parameters: false\n", "training.freeze_base_model_parameters: unknown key"),
        ("training:\n  calibration_precision: 1.5\n", "training.calibration_precision: value 1.5 is out of range"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError, match=message.replace("(", r"\(")):
        load_section("training", path)


def test_best_metric_names() -> None:
    assert metric_key("eval_spearman_educational", ("educational",)) == "spearman_educational"
    assert metric_key("macro_f1_mean", ("educational", "toxic")) == "macro_f1_mean"
    assert metric_key("loss", ("educational",)) == "loss"
    with pytest.raises(ParamsError, match="unknown metric 'spearman_toxic'"):
        metric_key("spearman_toxic", ("educational",))
    with pytest.raises(ParamsError, match="may not be named 'mean'"):
        metric_key("loss", ("mean",))
    assert not greater_is_better("loss") and not greater_is_better("mae_mean") and not greater_is_better("mse_x")
    assert greater_is_better("spearman_mean") and greater_is_better("macro_f1_educational")


def test_precision_auto_is_fp32_on_cpu_and_fp16_needs_a_gpu() -> None:
    if torch.cuda.is_available():
        assert resolve_precision("auto") in ("bf16", "fp16")
    else:
        assert resolve_precision("auto") == "fp32"
        assert resolve_precision("bf16") == "bf16"
        with pytest.raises(ParamsError, match="fp16 needs a GPU"):
            resolve_precision("fp16")
