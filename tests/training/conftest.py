"""Fixtures for the training tests: real FineWeb-Edu text, tiny params, offline models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlfilter.classifiers.model2vec_model import Model2VecConfig
from mlfilter.params import TaskParams
from mlfilter.training.params import TrainingParams

DATA = Path(__file__).parent / "data" / "fineweb_edu_sample.jsonl"

EDUCATIONAL = TaskParams(name="educational", prompt="prompts/educational_v1.yaml", num_targets=6, threshold=3)
#: A second task for multi-task tests: 0..2 by the number of digits in the text, missing for every fifth document.
DIGITS = TaskParams(name="digits", prompt="prompts/digits.yaml", num_targets=3, threshold=1)


def sample_records() -> list[dict[str, Any]]:
    """The 40 real documents of the test sample with both tasks' labels (``scores`` in task order)."""
    records = []
    for index, line in enumerate(DATA.read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        digits = sum(c.isdigit() for c in row["text"])
        second = None if index % 5 == 4 else min(2, digits // 10)
        records.append({"id": row["id"], "text": row["text"], "language": "en", "scores": [row["score"], second]})
    return records


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write records as JSON Lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No hub, no progress bars, and a scratch working directory for every test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MLFILTER_PROGRESS", "0")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def splits(tmp_path: Path) -> Callable[[int], tuple[Path, Path]]:
    """Write train (first 30) and val (last 10) split files with the labels of the first ``n_tasks`` tasks."""

    def make(n_tasks: int = 1) -> tuple[Path, Path]:
        records = [dict(r, scores=r["scores"][:n_tasks]) for r in sample_records()]
        return write_jsonl(tmp_path / "splits" / "train.jsonl", records[:30]), write_jsonl(
            tmp_path / "splits" / "val.jsonl", records[30:]
        )

    return make


@pytest.fixture
def tiny_params(tmp_path: Path) -> Callable[..., TrainingParams]:
    """Training params small enough for a CPU test: frozen, short inputs, two epochs, scratch folders in tmp."""

    def make(**overrides: Any) -> TrainingParams:
        values: dict[str, Any] = {
            "mode": "frozen",
            "max_length": 64,
            "batch_size": 8,
            "eval_batch_size": 16,
            "num_epochs": 2,
            "learning_rate": 5e-3,
            "logging_steps": 1,
            "early_stopping_patience": 0,
            "embedding_cache_dir": str(tmp_path / "embeddings"),
            "checkpoint_dir": str(tmp_path / "checkpoints"),
        }
        values.update(overrides)
        return TrainingParams(**values)

    return make


#: model2vec settings small enough for a test: ~2.5k of MiniLM's 30k tokens (words of up to two characters and
#: single-character word pieces, so every word still tokenizes), a distillation of ~7 CPU-s instead of ~70.
SMALL_MODEL2VEC = Model2VecConfig(pca_dims=32, token_remove_pattern=r"\[unused\d+\]|##..|[^\[#].{2,}", max_length=256)
