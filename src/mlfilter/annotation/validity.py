"""Validity before value: what a reply must prove before its score counts.

:class:`Judge` turns one cached result (see :meth:`OpenAIBackend.read
<mlfilter.annotation.backends.openai_client.OpenAIBackend.read>`; the local backend writes the same keys)
into a :class:`Verdict`: a score and exactly one status of :mod:`mlfilter.annotation.statuses`. It runs
when the output is assembled from the cache, so changing a validity param (``min_label_mass``,
``accept_length``) rereads the cache and sends nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from mlfilter.annotation.parsing import ScoreParser, logprob_score
from mlfilter.annotation.statuses import (
    EMPTY_REPLY,
    INVALID_JSON,
    LENGTH,
    LOW_LABEL_MASS,
    NO_LABEL_TOKEN,
    NO_LOGPROBS,
    OK,
    REASONING_ONLY,
    REFUSED,
)

_INTEGER = re.compile(r"-?\d+")


def score_schema(labels: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of a json-mode reply: ``{"score": <one of the labels>}`` and nothing else.

    Integer labels (``0``–``5``) are integers in the schema, other labels strings. Shape: a JSON Schema
    object, as OpenAI's ``response_format: {type: json_schema}`` (strict) and vLLM, SGLang and llama.cpp's
    server accept it.
    """
    numeric = all(_INTEGER.fullmatch(label) for label in labels)
    values: list[Any] = [int(label) for label in labels] if numeric else list(labels)
    return {
        "type": "object",
        "properties": {"score": {"type": "integer" if numeric else "string", "enum": values}},
        "required": ["score"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class Verdict:
    """One generation as its record holds it: score (label index, or expected label in logprobs mode;
    None unless ``status`` is ``ok``), status, the reply text, logprobs distribution and label mass,
    the finish reason and the (truncated) reasoning."""

    score: float | None
    status: str
    reply: str | None
    distribution: list[float] | None = None
    label_mass: float | None = None
    finish_reason: str | None = None
    reasoning: str | None = None


class Judge:
    """Reads scores out of the cached results of one task, with the annotator's validity rules.

    ``mode``: ``generate``, ``logprobs`` or ``json``. ``min_label_mass``: logprobs mode, the least
    probability the labels must hold. ``accept_length``: a reply cut off by the token limit may count.
    """

    def __init__(
        self, mode: str, parser: ScoreParser, *, min_label_mass: float = 0.5, accept_length: bool = False
    ) -> None:
        self.mode = mode
        self.parser = parser
        self.labels = parser.labels
        self.min_label_mass = min_label_mass
        self.accept_length = accept_length
        self._label_set = {label.casefold() for label in self.labels}
        self._schema = Draft202012Validator(score_schema(self.labels))

    def __call__(self, result: Mapping[str, Any], prefix: str = "") -> Verdict:
        """The verdict on one cached result; ``prefix`` is the reply prefix the request forced, if any."""
        text = result.get("text") or ""
        reasoning = result.get("reasoning") or None
        finish = result.get("finish_reason")

        def verdict(score: float | None, status: str, **logprobs: Any) -> Verdict:
            return Verdict(score, status, text, finish_reason=finish, reasoning=reasoning, **logprobs)

        if result.get("refusal") or finish == "content_filter":
            return verdict(None, REFUSED)
        if self.mode == "logprobs":
            return self._logprobs(result, text, verdict)
        if not text.strip():
            if reasoning:
                return verdict(None, REASONING_ONLY)
            return verdict(None, LENGTH if finish == "length" else EMPTY_REPLY)
        score, status = self._json(text) if self.mode == "json" else self.parser.parse(prefix + text)
        if finish == "length" and not self.accept_length and not self._complete(text, prefix, status):
            return verdict(None, LENGTH)
        return verdict(score if status == OK else None, status)

    def _complete(self, text: str, prefix: str, status: str) -> bool:
        """A cut-off reply still proves its score when it is valid JSON (closed) or, after a forced prefix,
        exactly one label (nothing of the score can be missing)."""
        if self.mode == "json":
            return status == OK
        return bool(prefix) and text.strip().casefold() in self._label_set

    def _json(self, text: str) -> tuple[int | None, str]:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None, INVALID_JSON
        if not self._schema.is_valid(value):
            return None, INVALID_JSON
        return self.parser.label_index(str(value["score"]))

    def _logprobs(self, result: Mapping[str, Any], text: str, verdict: Any) -> Verdict:
        top = result.get("top_logprobs")
        if not top:
            return verdict(None, NO_LOGPROBS)
        read = logprob_score((tuple(t) for t in top), self.labels)
        mass = read.label_mass if read is not None else 0.0
        if text.strip().casefold() not in self._label_set:
            return verdict(None, NO_LABEL_TOKEN, label_mass=mass)
        if read is None or read.label_mass < self.min_label_mass:
            return verdict(None, LOW_LABEL_MASS, label_mass=mass)
        return verdict(read.expected, OK, distribution=list(read.distribution), label_mass=read.label_mass)
