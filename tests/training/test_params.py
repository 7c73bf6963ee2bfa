"""The training section of params.yaml: types, ranges and the best-metric name."""

from __future__ import annotations

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
    assert params.base_model == "embedded:all-MiniLM-L6-v2"
    assert params.uses_fast_path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("training:\n  lerning_rate: 1e-3\n", "training.lerning_rate: unknown key"),
        ("training:\n  pooling: max\n", "training.pooling: expected one of 'cls', 'mean'"),
        ("training:\n  batch_size: 0\n", "training.batch_size: expected a positive value"),
        ("training:\n  warmup_ratio: 1.5\n", "training.warmup_ratio: value 1.5 is out of range"),
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
