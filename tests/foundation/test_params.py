"""Typed params: conversions as DVC writes them, and errors that name the key path."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from mlfilter.params import ParamsError, TaskParams, convert, load_all, load_section, load_tasks, read_params_file


@dataclass(frozen=True)
class Optimizer:
    learning_rate: float = 1e-4
    schedule: Literal["linear", "cosine"] = "linear"


@dataclass(frozen=True)
class Section:
    epochs: int
    optimizer: Optimizer = field(default_factory=Optimizer)
    languages: tuple[str, ...] = ()
    weights: dict[str, float] = field(default_factory=dict)
    note: str | None = None


def test_float_written_by_dvc_exp_run_set_param_comes_back_as_float(tmp_path: Path) -> None:
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` calls to edit params.yaml

    params = tmp_path / "params.yaml"
    params.write_text("training:\n  epochs: 3\n  optimizer:\n    learning_rate: 0.0001\n")
    apply_overrides(params, ["training.optimizer.learning_rate=2e-5"])
    raw = read_params_file(params)
    assert raw["training"]["optimizer"]["learning_rate"] == "2e-05", "DVC writes 2e-05, which YAML reads as str"
    typed = convert(raw["training"], Section, "training")
    assert typed.optimizer.learning_rate == pytest.approx(2e-5)
    assert isinstance(typed.optimizer.learning_rate, float)


def test_whole_number_float_written_by_dvc_exp_run_is_accepted_for_an_int(tmp_path: Path) -> None:
    from dvc.utils.hydra import apply_overrides

    params = tmp_path / "params.yaml"
    params.write_text("sample:\n  epochs: 3\n")
    apply_overrides(params, ["sample.epochs=2e5"])
    raw = read_params_file(params)
    assert raw["sample"]["epochs"] == 200000.0, "DVC writes 200000.0 for 2e5"
    typed = convert(raw["sample"], Section, "sample")
    assert typed.epochs == 200000
    assert type(typed.epochs) is int
    assert convert({"epochs": "2e5"}, Section, "s").epochs == 200000


def test_nested_lists_maps_and_optionals_convert() -> None:
    typed = convert(
        {"epochs": 2, "languages": ["en", "de"], "weights": {"a": 1, "b": "0.5"}, "note": None}, Section, "s"
    )
    assert typed.languages == ("en", "de")
    assert typed.weights == {"a": 1.0, "b": 0.5}
    assert typed.note is None
    assert typed.optimizer == Optimizer()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"epochs": 2, "optimiser": {}}, "s.optimiser: unknown key; allowed keys: epochs, languages, note"),
        ({"epochs": "two"}, "s.epochs: expected int, got 'two'"),
        ({"epochs": True}, "s.epochs: expected int, got True"),
        ({"epochs": 2.5}, "s.epochs: expected int, got 2.5"),
        ({"epochs": "2.5e0"}, "s.epochs: expected int, got '2.5e0'"),
        ({"epochs": 1, "optimizer": {"learning_rate": "fast"}}, "s.optimizer.learning_rate: expected float"),
        ({"epochs": 1, "optimizer": {"schedule": "step"}}, "s.optimizer.schedule: expected one of 'linear', 'cosine'"),
        ({"epochs": 1, "languages": ["en", 3]}, "s.languages[1]: expected str, got 3"),
        ({}, "s.epochs: missing required key (int)"),
    ],
)
def test_bad_params_name_the_key_path(data: dict, message: str) -> None:
    with pytest.raises(ParamsError) as error:
        convert(data, Section, "s")
    assert message in str(error.value)


def test_load_section_and_tasks_from_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "seed": 7,
                "tasks": [
                    {"name": "educational", "prompt": "p/e.yaml", "num_targets": 6, "threshold": 3},
                    {"name": "adult", "prompt": "p/a.yaml", "num_targets": 2, "threshold": 1},
                ],
            }
        )
    )
    assert load_section("seed", params) == 7
    tasks = load_tasks(params)
    assert tasks == (
        TaskParams("educational", "p/e.yaml", 6, 3.0),
        TaskParams("adult", "p/a.yaml", 2, 1.0),
    )
    assert set(load_all(params)) == {"seed", "tasks"}


def test_task_errors(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    task = {"name": "edu", "prompt": "p.yaml", "num_targets": 6, "threshold": 9}
    params.write_text(yaml.safe_dump({"tasks": [task]}))
    with pytest.raises(ParamsError, match=r"tasks.edu.threshold: expected a value in \(0, 6\), got 9"):
        load_tasks(params)
    params.write_text(yaml.safe_dump({"tasks": [{**task, "threshold": 3}, {**task, "threshold": 3}]}))
    with pytest.raises(ParamsError, match="duplicate task name"):
        load_tasks(params)


def test_unknown_section_and_missing_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\ntrainnig: {}\n")
    with pytest.raises(ParamsError, match="trainnig: unknown params section"):
        load_all(params)
    with pytest.raises(ParamsError, match="params file not found"):
        read_params_file(tmp_path / "nope.yaml")


def test_mlfilter_params_command_prints_resolved_values(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("seed: 3\ntasks:\n- {name: edu, prompt: p.yaml, num_targets: 6, threshold: 3}\n")
    run = subprocess.run(
        [sys.executable, "-m", "mlfilter.cli", "params", "--params", str(params)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert yaml.safe_load(run.stdout) == {
        "seed": 3,
        "tasks": [{"name": "edu", "prompt": "p.yaml", "num_targets": 6, "threshold": 3.0}],
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: three\n")
    run = subprocess.run(
        [sys.executable, "-m", "mlfilter.cli", "params", "--params", str(bad)], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "seed: expected int, got 'three'" in run.stderr
    assert "Traceback" not in run.stderr


def test_repository_params_file_is_valid() -> None:
    repo_params = Path(__file__).resolve().parents[2] / "params.yaml"
    resolved = load_all(repo_params)
    assert resolved["tasks"], "the shipped params.yaml must define at least one task"
