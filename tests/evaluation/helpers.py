"""Writers of annotation files in our format and the original tool's, for the evaluation tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlfilter.records import RecordWriter, ShardedWriter


def annotation(
    doc_id: str, annotator: str, scores: Mapping[str, Sequence[float | None]], null_status: str = "parse_error"
) -> dict:
    """An annotate-stage record; null scores get ``null_status``."""
    return {
        "id": doc_id,
        "annotator": annotator,
        "model": f"{annotator}-model",
        "prompt": {task: {"name": f"{task}_v1", "sha256": "0" * 64} for task in scores},
        "scores": {task: list(values) for task, values in scores.items()},
        "status": {task: ["ok" if v is not None else null_status for v in values] for task, values in scores.items()},
        "replies": {task: [f"score: {v}" for v in values] for task, values in scores.items()},
        "usage": {"prompt_tokens": 100, "completion_tokens": 10},
        "truncated": {task: False for task in scores},
    }


def write_annotations(root: Path, annotator: str, records: Iterable[dict[str, Any]], per_shard: int = 1000) -> Path:
    """Write records to ``root/<annotator>/part-*.jsonl.zst`` as the annotate stage does; return the folder."""
    with ShardedWriter(root / annotator, records_per_shard=per_shard) as writer:
        for record in records:
            writer.write(record)
    return root / annotator


def original(doc_id: str, scores: Sequence[float | None], model: str, prompt: str = "edu", lang: str = "en") -> dict:
    """A record of the original tool's annotation format."""
    return {
        "document_id": doc_id,
        "scores": list(scores),
        "explanation": [f"reason {i}" for i in range(len(scores))],
        "meta_information": {"prompt_name": prompt, "prompt_lang": lang, "model_name": model, "timestamp": 20241202},
    }


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Plain JSON Lines, one record per line (``json.dumps``, as the original tool writes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Records in any supported format, by suffix."""
    with RecordWriter(path) as writer:
        writer.write_many(records)
    return path
