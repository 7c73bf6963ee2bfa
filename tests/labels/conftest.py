"""Fixtures for the labels tests: tasks, and writers of sample and annotation folders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from mlfilter.params import TaskParams
from mlfilter.records import RecordWriter

EDU = TaskParams(name="educational", prompt="prompts/educational_v1.yaml", num_targets=6, threshold=3)
TOXIC = TaskParams(name="toxic", prompt="prompts/toxic_v1.yaml", num_targets=3, threshold=1)


@pytest.fixture
def one_task() -> tuple[TaskParams, ...]:
    return (EDU,)


@pytest.fixture
def two_tasks() -> tuple[TaskParams, ...]:
    return (EDU, TOXIC)


def write_sample(folder: Path, docs: Iterable[tuple[str, str, str | None]], per_shard: int = 1000) -> Path:
    """Write sample documents ``(id, text, language)`` as zstd shards the way the sample stage does."""
    from mlfilter.records import ShardedWriter

    with ShardedWriter(folder, records_per_shard=per_shard) as writer:
        for doc_id, text, language in docs:
            writer.write({"id": doc_id, "text": text, "url": f"https://example.org/{doc_id}", "language": language})
    return folder


def annotation(doc_id: str, annotator: str, scores: dict[str, Sequence[float | None]]) -> dict[str, Any]:
    """An annotate-stage record for one document."""
    return {
        "id": doc_id,
        "annotator": annotator,
        "model": f"{annotator}-model",
        "prompt": {task: {"name": f"{task}_v1", "sha256": "0" * 64} for task in scores},
        "scores": {task: list(values) for task, values in scores.items()},
        "status": {task: ["ok" if v is not None else "parse_error" for v in values] for task, values in scores.items()},
        "replies": {task: [f"score: {v}" for v in values] for task, values in scores.items()},
        "usage": {"prompt_tokens": 100, "completion_tokens": 10},
        "truncated": {task: False for task in scores},
    }


def write_annotations(root: Path, annotator: str, records: Iterable[dict[str, Any]], shard: int = 0) -> Path:
    """Write records to ``root/<annotator>/part-<shard>.jsonl.zst`` as the annotate stage does."""
    path = root / annotator / f"part-{shard:05d}.jsonl.zst"
    with RecordWriter(path) as writer:
        writer.write_many(records)
    return path


def original_record(doc_id: str, scores: Sequence[float | None], model: str, prompt: str = "edu") -> dict[str, Any]:
    """A record in the original tool's annotation format."""
    return {
        "document_id": doc_id,
        "scores": list(scores),
        "explanation": [f"<explanation {i}>" for i in range(len(scores))],
        "meta_information": {"prompt_name": prompt, "prompt_lang": "en", "model_name": model},
    }
