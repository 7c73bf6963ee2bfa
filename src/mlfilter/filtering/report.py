"""The filter stage's reports, built from the shard markers (so a resumed run reports the whole corpus).

- ``metrics.json``: documents and tokens in and kept, dropped per reason, per language, mean scores,
  shards scored / reused / failed, throughput;
- ``score_histogram.csv``: documents and tokens per score bin and task (scores outside the task's
  label range are counted in the end bins);
- ``threshold_sweep.csv``: documents and tokens whose raw score is at or above a cut, per task, cut
  (``raw_cut``) and language (``all`` for the whole corpus). The threshold keep rule rounds scores first
  (:func:`mlfilter.scores.at_or_above`), so it keeps what the row at ``raw_cut = threshold - 0.5`` shows.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.atomic import atomic_open
from mlfilter.errors import MlfilterError
from mlfilter.filtering.shards import ShardJob, ShardOutcome, read_marker
from mlfilter.reports import ALL_TASKS, Figure, StageCounts, write_report

ALL_LANGUAGES = "all"


@dataclass
class CorpusSummary:
    """Counts and score histograms of a whole run, merged from its shard markers."""

    task_names: list[str]
    edges: list[np.ndarray]
    counts: StageCounts = field(default_factory=StageCounts)
    tokens_in: int = 0
    tokens_kept: int = 0
    languages: dict[str, dict[str, int]] = field(default_factory=dict)
    score_sums: np.ndarray | None = None
    histograms: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)

    def _histogram(self, task: int, language: str) -> dict[str, np.ndarray]:
        key = (self.task_names[task], language)
        if key not in self.histograms:
            bins = len(self.edges[task]) + 1
            self.histograms[key] = {"documents": np.zeros(bins, np.int64), "tokens": np.zeros(bins, np.int64)}
        return self.histograms[key]

    def add_shard(self, scored: dict[str, Any], filtered: dict[str, Any]) -> None:
        """Merge one shard's scoring and filtering markers."""
        for reason, count in scored["dropped"].items():
            self.counts.drop(reason, count)
        self.counts.keep(filtered["kept"])
        for reason, count in filtered["dropped"].items():
            self.counts.drop(reason, count)
        if filtered["kept"] + sum(filtered["dropped"].values()) != scored["documents"]:
            raise MlfilterError(f"{scored['source']}: its markers disagree on the number of documents")
        self.tokens_in += scored["tokens"]
        self.tokens_kept += filtered["kept_tokens"]
        if self.score_sums is None:
            self.score_sums = np.zeros(len(self.task_names))
        for language, stats in scored["languages"].items():
            entry = self.languages.setdefault(language, {"documents": 0, "kept": 0, "tokens": 0, "kept_tokens": 0})
            entry["documents"] += stats["documents"]
            entry["tokens"] += stats["tokens"]
            self.score_sums += np.asarray(stats["score_sums"])
            for t, task in enumerate(self.task_names):
                for scope in (language, ALL_LANGUAGES):
                    histogram = self._histogram(t, scope)
                    histogram["documents"] += np.asarray(stats["histogram"][task]["documents"])
                    histogram["tokens"] += np.asarray(stats["histogram"][task]["tokens"])
        for language, (kept, kept_tokens) in filtered["kept_by_language"].items():
            entry = self.languages.setdefault(language, {"documents": 0, "kept": 0, "tokens": 0, "kept_tokens": 0})
            entry["kept"] += kept
            entry["kept_tokens"] += kept_tokens

    @property
    def documents_scored(self) -> int:
        """Valid documents that have scores."""
        return sum(entry["documents"] for entry in self.languages.values())


def summarize(
    jobs: Sequence[ShardJob],
    failures: dict[int, ShardOutcome],
    task_names: Sequence[str],
    edges: Sequence[Sequence[float]],
) -> CorpusSummary:
    """Merge the markers of every shard; a failed shard counts its documents read as ``failed_shard``."""
    summary = CorpusSummary(list(task_names), [np.asarray(e) for e in edges])
    for job in jobs:
        if job.index in failures:
            summary.counts.drop("failed_shard", failures[job.index].documents)
            continue
        scored, filtered = read_marker(job.attributes_marker), read_marker(job.output_marker)
        if scored is None or filtered is None:
            raise MlfilterError(f"{job.source}: finished without its completion markers")
        summary.add_shard(scored, filtered)
    summary.counts.check_balance()
    return summary


def build_metrics(summary: CorpusSummary, extra: dict[str, Any]) -> dict[str, Any]:
    """The content of ``metrics.json`` (the stage's report). A fraction or mean over nothing is ``None`` with the
    reason under ``undefined``."""
    counts = summary.counts.as_dict()
    scored = summary.documents_scored
    sums = summary.score_sums if summary.score_sums is not None else np.zeros(len(summary.task_names))
    metrics = {
        "documents": {"in": counts["seen"], "kept": counts["kept"], "dropped": counts["dropped"]},
        "tokens": {"in": summary.tokens_in, "kept": summary.tokens_kept},
        "kept_fraction": {
            "documents": _ratio(counts["kept"], counts["seen"]),
            "tokens": _ratio(summary.tokens_kept, summary.tokens_in),
        },
        "scores": {task: {"mean": _ratio(float(sums[t]), scored)} for t, task in enumerate(summary.task_names)},
        "languages": dict(sorted(summary.languages.items())),
        **extra,
    }
    undefined = {
        "kept_fraction.documents": "no document entered the filter" if not counts["seen"] else None,
        "kept_fraction.tokens": "the documents read hold no tokens" if not summary.tokens_in else None,
        "scores.mean": "no document was scored" if not scored else None,
    }
    if any(undefined.values()):
        metrics["undefined"] = {key: reason for key, reason in undefined.items() if reason}
    return metrics


def headline(metrics: dict[str, Any]) -> dict[str, dict[str, Figure]]:
    """The filter stage's headline figures (:func:`mlfilter.reports.write_headline`) from its ``metrics.json``:
    documents read, the fraction kept and per task the mean score."""
    return {
        "documents": {ALL_TASKS: metrics["documents"]["in"]},
        "kept_fraction": {ALL_TASKS: metrics["kept_fraction"]["documents"]},
        "mean_score": {task: entry["mean"] for task, entry in metrics["scores"].items()},
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` to 6 decimals; ``None`` over nothing (the caller gives the reason)."""
    return round(numerator / denominator, 6) if denominator else None


def _fold_ends(counts: np.ndarray) -> np.ndarray:
    """Bin counts between the first and last edge, the open-ended end bins folded into their neighbours."""
    folded = counts[1:-1].copy()
    folded[0] += counts[0]
    folded[-1] += counts[-1]
    return folded


def histogram_rows(summary: CorpusSummary) -> list[dict[str, Any]]:
    """Rows of ``score_histogram.csv`` (all languages together)."""
    rows = []
    for t, task in enumerate(summary.task_names):
        histogram = summary.histograms.get((task, ALL_LANGUAGES))
        if histogram is None:
            continue
        edges = summary.edges[t]
        documents, tokens = _fold_ends(histogram["documents"]), _fold_ends(histogram["tokens"])
        rows.extend(
            {
                "task": task,
                "bin_start": float(edges[i]),
                "bin_end": float(edges[i + 1]),
                "documents": int(documents[i]),
                "tokens": int(tokens[i]),
            }
            for i in range(len(edges) - 1)
        )
    return rows


def sweep_rows(summary: CorpusSummary) -> list[dict[str, Any]]:
    """Rows of ``threshold_sweep.csv``: documents whose raw ``score >= raw_cut``, per task and language."""
    rows = []
    for (task, language), histogram in sorted(summary.histograms.items()):
        edges = summary.edges[summary.task_names.index(task)]
        documents_total = int(histogram["documents"].sum())
        tokens_total = int(histogram["tokens"].sum())
        documents_at = np.cumsum(histogram["documents"][::-1])[::-1]
        tokens_at = np.cumsum(histogram["tokens"][::-1])[::-1]
        for j, cut in enumerate(edges):
            rows.append(
                {
                    "task": task,
                    "language": language,
                    "raw_cut": float(cut),
                    "documents": int(documents_at[j + 1]),
                    "tokens": int(tokens_at[j + 1]),
                    "documents_fraction": _ratio(int(documents_at[j + 1]), documents_total),
                    "tokens_fraction": _ratio(int(tokens_at[j + 1]), tokens_total),
                }
            )
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Write rows as CSV, atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_reports(folder: str | Path, summary: CorpusSummary, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json``, ``score_histogram.csv`` and ``threshold_sweep.csv`` into ``folder``."""
    folder = Path(folder)
    write_csv(
        folder / "score_histogram.csv", histogram_rows(summary), ["task", "bin_start", "bin_end", "documents", "tokens"]
    )
    write_csv(
        folder / "threshold_sweep.csv",
        sweep_rows(summary),
        ["task", "language", "raw_cut", "documents", "tokens", "documents_fraction", "tokens_fraction"],
    )
    write_report(folder / "metrics.json", metrics)
