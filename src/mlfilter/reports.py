"""Stage accounting and what a stage writes about itself.

Every stage writes two kinds of files:

- a **report** (``reports/<stage>.json`` and the like): everything — counts per reason, per-language detail,
  examples, timings and throughput. A plain DVC output, never declared as metrics: it changes with the machine.
- **headline metrics** (``reports/metrics/<stage>/<figure>.json``, :func:`write_headline`): the few figures that
  describe the data and the model, rounded by :func:`mlfilter.scores.round_statistic`. These folders are what
  ``dvc.yaml`` declares as metrics, so ``dvc metrics diff`` shows what changed in the data and the model, and an
  identical rerun shows nothing.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfilter.atomic import write_json
from mlfilter.errors import MlfilterError

#: Column of a headline figure that belongs to no single task (documents sampled, split sizes, …).
ALL_TASKS = "all"

#: A headline value: a count, a statistic (rounded when written), a label such as the chosen training mode, or
#: ``None`` for a statistic that is undefined (its reason is in the stage's report).
Figure = int | float | str | None


def format_metric(value: float | None) -> str:
    """A metric in a model card or log line: 4 decimals, ``n/a`` when undefined (``None`` or NaN)."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


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
    """Write a stage's report (strict JSON) atomically."""
    write_json(path, report)


def write_headline(folder: str | os.PathLike[str], figures: Mapping[str, Mapping[str, Figure]]) -> None:
    """Write each headline figure as ``folder/<figure>.json`` holding ``{column: value}``; remove stale figures.

    A column is a task name, or :data:`ALL_TASKS` for a figure of the whole stage. ``dvc metrics show`` prints one
    table: a row per file and a column per key over all files, so one file per figure keyed by task keeps the
    table one column per task wide however many figures the stages report. Floats are rounded with
    :func:`mlfilter.scores.round_statistic`; ints, strings and ``None`` are written as they are.

    Raises:
        ValueError: a value is NaN or infinite (undefined statistics are ``None``, their reason in the report).
    """
    from mlfilter.scores import round_statistic  # here, so that numpy stays out of every command's --help

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("*.json"):
        if stale.stem not in figures:
            stale.unlink()
    for name, columns in figures.items():
        rounded = {column: round_statistic(v) if isinstance(v, float) else v for column, v in columns.items()}
        write_json(target / f"{name}.json", rounded)
