"""The reports of the aggregate and split stages (counts, histograms, dispersion, throughput) and their headline
figures."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mlfilter.labels.aggregation import NO_LABEL, TIE, TOO_FEW, TaskLabels
from mlfilter.params import TaskParams
from mlfilter.reports import ALL_TASKS, Figure
from mlfilter.scores import round_half_up


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return round(float(finite.mean()), 4) if finite.size else None


def class_histogram(labels: Iterable[float | None], num_targets: int) -> dict[str, int]:
    """Counts of each class ``0 .. num_targets - 1`` (floats rounded half up) plus ``null`` if any."""
    counts = Counter({str(c): 0 for c in range(num_targets)})
    for label in labels:
        counts["null" if label is None else str(int(round_half_up(np.asarray(label))))] += 1
    if not counts["null"]:
        del counts["null"]
    return dict(counts)


def task_summary(task: TaskParams, labels: TaskLabels, kept: np.ndarray, annotated: np.ndarray) -> dict[str, Any]:
    """Label histogram and mean dispersion over kept documents; why annotated documents lack a label."""
    labelled = kept & np.isfinite(labels.label)
    no_valid_score = annotated & (labels.status == NO_LABEL)
    summary: dict[str, Any] = {
        "labelled": int(labelled.sum()),
        "histogram": class_histogram(labels.label[labelled].tolist(), task.num_targets),
        "mean_label": _mean(labels.label[labelled]),
        "no_label": {
            "too_few_valid_scores": int((labels.status == TOO_FEW).sum() + no_valid_score.sum()),
            "majority_tie": int((labels.status == TIE).sum()),
        },
        "dispersion": {
            "mean_n": _mean(labels.n[labelled].astype(np.float64)),
            "mean_std": _mean(labels.std[labelled]),
            "mean_range": _mean(labels.range[labelled]),
            "mean_agreement": _mean(labels.agreement[labelled]),
        },
    }
    if labels.confidence is not None:
        summary["dispersion"]["mean_confidence"] = _mean(labels.confidence[labelled])
    if not labelled.any():
        summary["undefined"] = "no document has a label for this task: its means are null"
    return summary


def split_summary(
    records_by_split: Mapping[str, Sequence[tuple[str | None, tuple[float | None, ...]]]],
    tasks: Sequence[TaskParams],
    fractions: Mapping[str, float],
) -> dict[str, Any]:
    """Per split: count, share (``None`` when there are no documents at all), language histogram and label
    histogram per task.

    ``records_by_split`` holds, per split, one ``(language, labels)`` pair per document.
    """
    total = sum(len(rows) for rows in records_by_split.values())
    summary: dict[str, Any] = {}
    for split, rows in records_by_split.items():
        languages = Counter(language or "unknown" for language, _ in rows)
        summary[split] = {
            "count": len(rows),
            "share": round(len(rows) / total, 4) if total else None,
            "target_share": fractions[split],
            "languages": dict(sorted(languages.items())),
            "labels": {
                task.name: class_histogram((labels[i] for _, labels in rows), task.num_targets)
                for i, task in enumerate(tasks)
            },
        }
    return summary


def stratification_summary(
    strata: Mapping[str, Mapping[str, int]], fractions: Mapping[str, float], *, min_size: int = 30
) -> dict[str, Any]:
    """How far each stratum's split shares are from the targets.

    ``strata`` maps a stratum name to its document count per split. Over the strata of at least
    ``min_size`` documents (smaller ones cannot hit the shares): the largest and the mean absolute
    deviation of a split share from its target, the worst stratum, and the largest deviation in
    binomial standard deviations, sqrt(share (1 - share) / size) (``max_z``: under random
    assignment it stays below about 4, so a larger value means the split is not stratified).
    """
    deviations: list[tuple[float, str]] = []
    max_z = 0.0
    for name, counts in strata.items():
        size = sum(counts.values())
        if size < min_size:
            continue
        shares = {split: abs(counts.get(split, 0) / size - share) for split, share in fractions.items()}
        deviations.append((max(shares.values()), name))
        for split, share in fractions.items():
            if 0 < share < 1:
                max_z = max(max_z, shares[split] / math.sqrt(share * (1 - share) / size))
    deviations.sort(reverse=True)
    return {
        "strata": len(strata),
        "checked_strata": len(deviations),
        "min_stratum_size": min_size,
        "max_share_deviation": round(deviations[0][0], 4) if deviations else None,
        "mean_share_deviation": round(float(np.mean([d for d, _ in deviations])), 4) if deviations else None,
        "worst_stratum": deviations[0][1] if deviations else None,
        "max_z": round(max_z, 3) if deviations else None,
    }


def aggregate_headline(report: Mapping[str, Any]) -> dict[str, dict[str, Figure]]:
    """The aggregate stage's headline figures (:func:`mlfilter.reports.write_headline`) from its report: documents
    labelled, and per task the mean label (``None`` for a task without labels)."""
    return {
        "documents_labelled": {ALL_TASKS: report["documents"]["kept"]},
        "mean_label": {task: summary["mean_label"] for task, summary in report["tasks"].items()},
    }


def split_headline(report: Mapping[str, Any]) -> dict[str, dict[str, Figure]]:
    """The split stage's headline figures (:func:`mlfilter.reports.write_headline`): documents per split."""
    return {f"{split}_documents": {ALL_TASKS: summary["count"]} for split, summary in report["splits"].items()}
