"""Stage accounting: documents in, kept and dropped per named reason, throughput, metrics JSON."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mlfilter.atomic import write_json
from mlfilter.errors import MlfilterError


@dataclass
class StageCounts:
    """Every document that enters a stage is kept or dropped under a named reason."""

    seen: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def keep(self, n: int = 1) -> None:
        """Count ``n`` documents that entered and were kept."""
        self.seen += n
        self.kept += n

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` documents that entered and were dropped for ``reason``."""
        self.seen += n
        self.dropped[reason] += n

    def check_balance(self) -> None:
        """Raise if some document is unaccounted for (seen ≠ kept + dropped)."""
        if self.seen != self.kept + sum(self.dropped.values()):
            raise MlfilterError(
                f"accounting error: {self.seen} documents seen, {self.kept} kept, {dict(self.dropped)} dropped"
            )

    def as_dict(self) -> dict[str, Any]:
        """The counts as they appear in a metrics JSON."""
        return {"seen": self.seen, "kept": self.kept, "dropped": dict(sorted(self.dropped.items()))}


class Stopwatch:
    """Wall-clock time since creation, and rates per second."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds elapsed."""
        return time.perf_counter() - self.start

    def rate(self, count: float) -> float:
        """``count`` per second elapsed, rounded for reports."""
        return round(count / max(self.seconds, 1e-9), 3)


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write a stage's metrics JSON atomically."""
    write_json(path, report)
