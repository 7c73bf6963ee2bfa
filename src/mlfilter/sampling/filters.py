"""The document flowing through the sample, and the filters that keep it or drop it under a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SampleDocument:
    """A document read from an input file; ``language`` and ``language_score`` are set by identification."""

    id: str
    text: str
    url: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    language: str | None = None
    language_score: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """The output record: the Document contract, with the language score and provenance in metadata."""
        record: dict[str, Any] = {"id": self.id, "text": self.text}
        if self.url is not None:
            record["url"] = self.url
        record["language"] = self.language
        record["metadata"] = {**self.metadata, "language_score": self.language_score}
        return record


@dataclass(frozen=True)
class Dropped:
    """``count`` input records dropped for ``reason``."""

    reason: str
    count: int = 1


class DocumentFilter(Protocol):
    """Keeps a document (``None``) or names the reason it is dropped."""

    def __call__(self, document: SampleDocument) -> str | None:
        """The drop reason, or ``None`` to keep ``document``."""
        ...


@dataclass(frozen=True)
class LengthFilter:
    """Drops texts shorter than ``min_chars`` (``too_short``) or longer than ``max_chars`` (``too_long``)."""

    min_chars: int
    max_chars: int

    def __call__(self, document: SampleDocument) -> str | None:
        length = len(document.text)
        if length < self.min_chars:
            return "too_short"
        if length > self.max_chars:
            return "too_long"
        return None


@dataclass(frozen=True)
class LanguageScoreFilter:
    """Drops documents whose language the identifier is less sure of than ``min_score``."""

    min_score: float

    def __call__(self, document: SampleDocument) -> str | None:
        return "low_language_score" if document.language_score < self.min_score else None


@dataclass(frozen=True)
class LanguageFilter:
    """Drops documents in languages outside the allow-list (``language_not_selected``)."""

    languages: frozenset[str]

    def __call__(self, document: SampleDocument) -> str | None:
        return None if document.language in self.languages else "language_not_selected"
