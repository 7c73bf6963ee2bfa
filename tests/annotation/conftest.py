"""Fixtures of the annotate tests: real documents, the shared tasks, a fake OpenAI server, helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlfilter.annotation.params import AnnotatorParams
from mlfilter.params import TaskParams
from mlfilter.records import expand_inputs, iter_records
from tests.openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = Path(__file__).with_name("data") / "documents.jsonl"
EDUCATIONAL = TaskParams("educational", str(ROOT / "prompts" / "educational_v1.yaml"), 6, 3)
ADULT = TaskParams("adult", str(ROOT / "prompts" / "adult_v1.yaml"), 4, 1)


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFILTER_PROGRESS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """A fault-free fake OpenAI server on 127.0.0.1."""
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    """A fresh request cache."""
    return tmp_path / "cache" / "requests.sqlite"


def fast_params(**overrides: Any) -> AnnotatorParams:
    """openai-backend params with test-sized timeouts and backoff."""
    values: dict[str, Any] = {
        "backend": "openai",
        "model": "fake-model",
        "concurrency": 16,
        "timeout_s": 2.0,
        "max_retries": 8,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "max_document_tokens": 300,
    }
    values.update(overrides)
    return AnnotatorParams(**values)


def read_output(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of an annotation folder, in file order."""
    return [record for path in expand_inputs([str(folder)]) for _, record in iter_records(path)]


def output_bytes(folder: str | os.PathLike[str]) -> dict[str, bytes]:
    """File name → bytes of every file in an output folder."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}
