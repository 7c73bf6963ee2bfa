"""The original tool's train_classifier / annotator_training_pipeline commands and their configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mlfilter.cli import main
from mlfilter.modeling import AnnotatorModel
from mlfilter.params import ParamsError
from mlfilter.training.original_config import load_original_config

ORIGINAL_CONFIG = """\
model:
  name: embedded:all-MiniLM-L6-v2
  freeze_base_model_parameters: true
  num_tasks: ${data.num_tasks}
  num_targets_per_task: ${data.num_targets_per_task}
  is_regression: ${training.is_regression}
  num_labels: 6
  hidden_dropout_prob: 0.0
tokenizer:
  pretrained_model_name_or_path: ${model.name}
  truncation: true
  padding: true
  max_length: 64
  add_generation_prompt: false
data:
  train_file_path: {train}
  train_file_split: train
  val_file_path: {val}
  val_file_split: train
  test_file_path: does/not/exist.jsonl
  text_column: text
  label_column: scores
  document_id_column: id
  num_tasks: 2
  num_targets_per_task: [6, 3]
  task_names: [edu, digits]
  num_processes: 4
training:
  batch_size: 8
  epochs: 1
  use_bf16: true
  weight_decay: 0.01
  eval_strategy: epoch
  save_strategy: epoch
  logging_steps: 1
  seed: 42
  is_regression: true
  greater_is_better: false
  metric_for_best_model: eval_val_loss
  learning_rate: 5e-03
  logging_dir_path: {out}/logs
  output_dir_path: {out}
  wandb_run_name: run
  load_best_model_at_end: true
  embedding_cache_dir: {out}/embeddings
"""


def _config(tmp_path: Path, splits) -> Path:
    train, val = splits(2)
    text = ORIGINAL_CONFIG.replace("{train}", str(train)).replace("{val}", str(val))
    path = tmp_path / "cfg.yaml"
    path.write_text(text.replace("{out}", str(tmp_path / "out")), encoding="utf-8")
    return path


def test_original_config_translates_to_params_tasks_and_paths(tmp_path: Path, splits) -> None:
    run = load_original_config(_config(tmp_path, splits))
    assert run.params.base_model == "embedded:all-MiniLM-L6-v2" and run.params.freeze_base_model_parameters
    assert run.params.max_length == 64 and run.params.num_epochs == 1 and run.params.learning_rate == 5e-3
    assert run.params.precision == "auto" and run.params.best_metric == "loss" and run.params.is_regression
    assert [(t.name, t.num_targets, t.threshold) for t in run.tasks] == [("edu", 6, 3.0), ("digits", 3, 1.0)]
    assert run.output_dir == tmp_path / "out" / "final" and run.live_dir == tmp_path / "out" / "logs"
    assert run.params.checkpoint_dir == str(tmp_path / "out" / "checkpoints")


def test_original_fine_tuning_config_becomes_mode_finetune_with_its_values(tmp_path: Path, splits) -> None:
    path = _config(tmp_path, splits)
    path.write_text(
        path.read_text().replace("freeze_base_model_parameters: true", "freeze_base_model_parameters: false")
    )
    (run,) = load_original_config(path).params.candidates()
    assert run.mode == "finetune" and not run.freeze_base_model_parameters
    assert (run.learning_rate, run.num_epochs, run.max_length) == (5e-3, 1, 64)


@pytest.mark.parametrize("command", ["train_classifier", "annotator_training_pipeline"])
def test_original_commands_train_into_output_dir_final(tmp_path: Path, splits, command: str) -> None:
    config = _config(tmp_path, splits)
    assert main([command, "--config_file_path", str(config)]) == 0
    final = tmp_path / "out" / "final"
    model = AnnotatorModel.from_pretrained(final)
    assert model.config.task_names == ["edu", "digits"] and model.config.num_targets_per_task == [6, 3]
    assert (final / "README.md").exists() and (final / "tokenizer.json").exists()
    metrics = json.loads((tmp_path / "out" / "logs" / "metrics.json").read_text())
    assert set(metrics["val"]) == {"edu", "digits", "mean"}
    with torch.no_grad():
        assert model.forward_embeddings(torch.zeros(1, 384)).scores.shape == (1, 2)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("  epochs: 1\n", "  epochs: 1\n  epoch_count: 3\n"), "training.epoch_count: unknown config key"),
        (("  num_tasks: 2\n", "  num_tasks: 3\n"), "model.num_tasks: 3 tasks, but model.num_targets_per_task lists 2"),
        (("  learning_rate: 5e-03\n", "  learning_rate: fast\n"), "training.learning_rate: expected float"),
        (
            ("  pretrained_model_name_or_path: ${model.name}\n", "  pretrained_model_name_or_path: other/model\n"),
            "differs from model.name",
        ),
        (("metric_for_best_model: eval_val_loss", "metric_for_best_model: edu/f1_weighted"), "has no equivalent"),
        (("  task_names: [edu, digits]\n", "  task_names: [edu]\n"), "data.task_names: 1 names for 2 tasks"),
    ],
)
def test_bad_original_configs_name_the_key(tmp_path: Path, splits, edit: tuple[str, str], message: str) -> None:
    path = _config(tmp_path, splits)
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    with pytest.raises(ParamsError) as error:
        load_original_config(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_cli_reports_config_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train_classifier", "--config_file_path", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: config file not found" in capsys.readouterr().err


def test_mlfilter_train_uses_params_yaml(tmp_path: Path, splits) -> None:
    train, val = splits(1)
    params = tmp_path / "params.yaml"
    params.write_text(
        "seed: 1\ntasks:\n  - {name: educational, prompt: p.yaml, num_targets: 6, threshold: 3}\n"
        "training:\n  mode: frozen\n  max_length: 32\n  num_epochs: 1\n",
        encoding="utf-8",
    )
    args = ["train", "--params", str(params), "--train", str(train), "--val", str(val)]
    assert main([*args, "--model", str(tmp_path / "m"), "--live", str(tmp_path / "live")]) == 0
    assert AnnotatorModel.from_pretrained(tmp_path / "m").config.task_names == ["educational"]
    assert (tmp_path / ".mlfilter" / "embeddings").is_dir()  # the default cache, relative to the working dir
