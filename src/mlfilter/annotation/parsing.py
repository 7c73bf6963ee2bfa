"""Reading scores out of LLM replies (generate mode) and out of token probabilities (logprobs mode).

A score is always a label index ``0 .. K-1`` (the position of the label the model wrote in the
prompt's ``labels``), or ``None`` with a status that says why (:mod:`mlfilter.annotation.statuses`) —
never a made-up 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mlfilter.annotation.statuses import NO_SCORE, OK, OUT_OF_RANGE


@dataclass(frozen=True)
class LogprobScore:
    """The expected label, the distribution over labels, and how much probability the labels held."""

    expected: float
    distribution: tuple[float, ...]
    label_mass: float


class ScoreParser:
    """Finds the score in a reply with a pattern (last match wins) and maps it to a label index."""

    def __init__(self, pattern: str, labels: Sequence[str]) -> None:
        self.pattern = re.compile(pattern)
        self.labels = tuple(labels)
        self._index = {label.casefold(): i for i, label in enumerate(self.labels)}
        self._numeric = all(re.fullmatch(r"-?\d+", label) for label in self.labels)

    def parse(self, reply: str | None) -> tuple[int | None, str]:
        """``(label index, "ok")``, or ``(None, "no_score" | "out_of_range")``."""
        if not reply:
            return None, NO_SCORE
        last = None
        for last in self.pattern.finditer(reply):  # noqa: B007 - the last match wins
            pass
        if last is None:
            return None, NO_SCORE
        value = next((g for g in reversed(last.groups()) if g is not None), None)
        if value is None:
            return None, NO_SCORE
        return self.label_index(value)

    def label_index(self, value: str) -> tuple[int | None, str]:
        """Map the text of a score to its label index; numbers outside the labels are out of range."""
        text = value.strip().strip("*").strip()
        if self._numeric:
            try:
                number = float(text.replace(",", "."))
            except ValueError:
                return None, NO_SCORE
            if not number.is_integer():
                return None, OUT_OF_RANGE
            text = str(int(number))
        index = self._index.get(text.casefold())
        if index is not None:
            return index, OK
        return None, OUT_OF_RANGE if self._numeric else NO_SCORE


def logprob_score(top_logprobs: Iterable[tuple[str, float]], labels: Sequence[str]) -> LogprobScore | None:
    """Turn the top log-probabilities of one output token into a distribution over the labels.

    Tokens are matched to labels after stripping whitespace (``" 3"`` and ``"3"`` both count for
    label ``"3"``); the distribution is renormalized over the labels. None when no label is among them.
    """
    index = {label.casefold(): i for i, label in enumerate(labels)}
    mass = [0.0] * len(labels)
    for token, logprob in top_logprobs:
        i = index.get(token.strip().casefold())
        if i is not None and logprob is not None and math.isfinite(logprob):
            mass[i] += math.exp(logprob)
    total = sum(mass)
    if total <= 0:
        return None
    distribution = tuple(round(m / total, 6) for m in mass)
    expected = sum(i * m for i, m in enumerate(mass)) / total
    return LogprobScore(round(expected, 4), distribution, round(total, 6))
