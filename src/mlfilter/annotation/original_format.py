"""The original tool's annotation files, read as an annotator (``backend: import``).

One JSON object per line: ``document_id``, ``scores`` (one score or null per generation),
``explanation``/``explanations`` (the replies), ``document_processing_status`` (``success``,
``error_faulty_score``, ``error_server``, ``error_no_generated_text`` per generation) and
``meta_information`` (``model_name`` or ``model``, ``prompt_name`` or ``prompt``, ``prompt_lang``).
Each becomes an annotation record of ours for one task, with scores in the task's label space.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlfilter.annotation.statuses import EMPTY_REPLY, NO_SCORE, OK, OUT_OF_RANGE, request_failed
from mlfilter.records import OnError, RecordFormatError, RecordLocation, expand_inputs, iter_records

#: The original tool's per-generation statuses → ours (for generations without a score).
STATUS_MAP = {
    "error_faulty_score": NO_SCORE,
    "error_no_generated_text": EMPTY_REPLY,
    "error_server": request_failed("server"),
}


@dataclass(frozen=True)
class OriginalAnnotation:
    """One line of an original-format annotation file."""

    document_id: str
    scores: tuple[Any, ...]
    replies: tuple[str | None, ...]
    statuses: tuple[str | None, ...]
    model: str | None
    prompt_name: str | None
    prompt_language: str | None


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def parse_original(record: Mapping[str, Any], location: RecordLocation) -> OriginalAnnotation:
    """Validate one original-format record; errors name file, line and field."""
    doc_id = record.get("document_id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id:
        raise RecordFormatError(location.path, location.line, "field 'document_id' is missing or not a string")
    scores = record.get("scores")
    if not isinstance(scores, list):
        raise RecordFormatError(
            location.path,
            location.line,
            f"field 'scores' must be a list with one score per generation, got {type(scores).__name__}",
            "bad_field_type",
        )
    meta = record.get("meta_information") or {}
    if not isinstance(meta, dict):
        raise RecordFormatError(location.path, location.line, "field 'meta_information' must be an object")
    replies = _list(record.get("explanations", record.get("explanation")))
    statuses = _list(record.get("document_processing_status"))
    return OriginalAnnotation(
        document_id=doc_id,
        scores=tuple(scores),
        replies=tuple(str(r) if r is not None else None for r in replies),
        statuses=tuple(str(s) if s is not None else None for s in statuses),
        model=meta.get("model_name") or meta.get("model"),
        prompt_name=meta.get("prompt_name") or meta.get("prompt"),
        prompt_language=meta.get("prompt_lang"),
    )


def read_original_annotations(
    inputs: Iterable[str], *, on_error: OnError = "raise", skipped: Counter[str] | None = None
) -> Iterator[tuple[RecordLocation, OriginalAnnotation]]:
    """Stream original-format annotations from files, folders or globs."""
    counter = skipped if skipped is not None else Counter()
    for path in expand_inputs(inputs):
        for location, record in iter_records(path, on_error=on_error, skipped=counter):
            try:
                yield location, parse_original(record, location)
            except RecordFormatError as exc:
                if on_error == "raise":
                    raise
                counter[exc.reason] += 1


class LabelMapper:
    """Maps a score on the prompt's scale (e.g. 1–5) to the task's label space ``0 .. K-1``."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = tuple(labels)
        self._index = {label.casefold(): i for i, label in enumerate(self.labels)}
        numbers = [int(label) for label in self.labels if re.fullmatch(r"-?\d+", label)]
        consecutive = len(numbers) == len(self.labels) and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        self._offset = numbers[0] if consecutive else None

    def map(self, value: Any) -> tuple[float | None, str]:
        """``(label-space score, "ok")`` or ``(None, "out_of_range" | "no_score")``."""
        if isinstance(value, bool) or value is None:
            return None, NO_SCORE
        if isinstance(value, int | float):
            if self._offset is None:
                return None, OUT_OF_RANGE
            score = float(value) - self._offset
            if 0 <= score <= len(self.labels) - 1:
                return (int(score) if score.is_integer() else score), OK
            return None, OUT_OF_RANGE
        if isinstance(value, str):
            index = self._index.get(value.strip().casefold())
            if index is not None:
                return index, OK
            try:
                return self.map(float(value))
            except ValueError:
                return None, NO_SCORE
        return None, NO_SCORE


def to_record(annotation: OriginalAnnotation, annotator: str, task: str, mapper: LabelMapper) -> dict[str, Any]:
    """Our annotation record for one original-format annotation of ``task``."""
    scores, statuses = [], []
    for i, value in enumerate(annotation.scores):
        score, status = mapper.map(value)
        original = annotation.statuses[i] if i < len(annotation.statuses) else None
        if score is None and status == NO_SCORE and original in STATUS_MAP:
            status = STATUS_MAP[original]
        scores.append(score)
        statuses.append(status)
    replies = list(annotation.replies[: len(scores)]) + [None] * (len(scores) - len(annotation.replies))
    return {
        "id": annotation.document_id,
        "annotator": annotator,
        "model": annotation.model,
        "prompt": {task: {"name": annotation.prompt_name, "sha256": None, "language": annotation.prompt_language}},
        "scores": {task: scores},
        "status": {task: statuses},
        "replies": {task: replies},
        "usage": {"prompt_tokens": 0, "completion_tokens": 0},
        "truncated": {task: None},
    }
