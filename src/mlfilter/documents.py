"""The Document type of the data contracts, and streaming document readers with validation."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlfilter.errors import MlfilterError
from mlfilter.records import InvalidUtf8, OnError, RecordFormatError, RecordLocation, expand_inputs, iter_records


@dataclass
class Document:
    """One document: a unique string ``id``, its ``text``, and optional ``url``, ``language``, ``metadata``."""

    id: str
    text: str
    url: str | None = None
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The JSON object written for this document (``None`` fields left out)."""
        record: dict[str, Any] = {"id": self.id, "text": self.text}
        if self.url is not None:
            record["url"] = self.url
        if self.language is not None:
            record["language"] = self.language
        if self.metadata:
            record["metadata"] = self.metadata
        return record


class DuplicateIdError(MlfilterError, ValueError):
    """The same document id occurs twice; the message names the file and line of the second one."""


class IdRegistry:
    """Remembers ids seen so far (as 8-byte digests, so a million ids take tens of MB, not the ids)."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def add(self, doc_id: str) -> bool:
        """Record ``doc_id``; return False when it was already seen."""
        digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        if digest in self._seen:
            return False
        self._seen.add(digest)
        return True

    def __len__(self) -> int:
        return len(self._seen)


def document_from_record(
    record: Mapping[str, Any], location: RecordLocation, fields: Mapping[str, str] | None = None
) -> Document:
    """Validate a record against the Document contract, renaming fields through ``fields``.

    ``fields`` maps Document field names to the record's keys, e.g. ``{"id": "document_id"}``.
    Raises :class:`RecordFormatError` naming the file, line and field on a missing or mistyped field.
    """
    names = {"id": "id", "text": "text", "url": "url", "language": "language", "metadata": "metadata"}
    names.update(fields or {})

    def get(name: str, required: bool, types: tuple[type, ...]) -> Any:
        key = names[name]
        if key not in record or record[key] is None:
            if required:
                raise RecordFormatError(location.path, location.line, f"field '{key}' is missing", "missing_field")
            return None
        value = record[key]
        if isinstance(value, int) and not isinstance(value, bool) and name == "id":
            return str(value)
        if not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in types)
            raise RecordFormatError(
                location.path,
                location.line,
                f"field '{key}' must be {expected}, got {type(value).__name__}",
                "bad_field_type",
            )
        return value

    return Document(
        id=get("id", True, (str,)),
        text=get("text", True, (str,)),
        url=get("url", False, (str,)),
        language=get("language", False, (str,)),
        metadata=dict(get("metadata", False, (dict,)) or {}),
    )


def read_documents(
    inputs: Iterable[str],
    *,
    fields: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    invalid_utf8: InvalidUtf8 = "replace",
    check_duplicates: bool = True,
    skipped: Counter[str] | None = None,
) -> Iterator[tuple[RecordLocation, Document]]:
    """Stream validated documents from files, folders or globs, in sorted file order.

    Malformed lines, invalid fields and duplicate ids raise an error naming file and line, or —
    with ``on_error="skip"`` — are counted in ``skipped`` under ``invalid_json``,
    ``missing_field``, ``bad_field_type``, ``duplicate_id`` and the like.
    """
    counter = skipped if skipped is not None else Counter()
    registry = IdRegistry() if check_duplicates else None
    for path in expand_inputs(inputs):
        for location, record in iter_records(path, on_error=on_error, invalid_utf8=invalid_utf8, skipped=counter):
            try:
                document = document_from_record(record, location, fields)
            except RecordFormatError as exc:
                if on_error == "raise":
                    raise
                counter[exc.reason] += 1
                continue
            if registry is not None and not registry.add(document.id):
                if on_error == "raise":
                    raise DuplicateIdError(f"{location}: duplicate document id {document.id!r}")
                counter["duplicate_id"] += 1
                continue
            yield location, document
