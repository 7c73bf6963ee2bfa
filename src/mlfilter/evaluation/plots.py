"""Plots: PNG files drawn with matplotlib (Agg backend, no display needed) and DVC plot data files.

PNGs: score distributions per rater, pairwise agreement heatmap, score differences between raters
(histograms and box plots), confusion matrices, and the classifier's threshold sweep.
DVC data (rendered by ``dvc plots show`` through the ``plots:`` entries in ``dvc.yaml``): one row
per test document for the confusion template, one row per cut for the sweep, and one CSV per
annotator with the count of each label for the bar template.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mlfilter.atomic import atomic_open, atomic_path, write_json
from mlfilter.evaluation.ratings import LabelSpace, RatingTable

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file-name-safe version of a task or rater name (``org/model`` → ``org_model``)."""
    return _UNSAFE.sub("_", name).strip("_") or "unnamed"


def save_figure(figure: Figure, path: Path) -> Path:
    """Write a figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def label_counts(values: np.ndarray, num_targets: int) -> np.ndarray:
    """How many scores round to each label (NaN left out)."""
    classes = LabelSpace(num_targets).to_classes(values[~np.isnan(values)]).astype(np.int64)
    return np.bincount(classes, minlength=num_targets)


def plot_score_distributions(columns: Mapping[str, np.ndarray], num_targets: int, title: str, path: Path) -> Path:
    """Grouped bars: the share of each label per rater (counts in the legend)."""
    figure, axis = plt.subplots(figsize=(max(6, num_targets * 1.2), 4.5))
    width = 0.8 / max(len(columns), 1)
    for i, (name, values) in enumerate(columns.items()):
        counts = label_counts(values, num_targets)
        shares = counts / max(counts.sum(), 1)
        axis.bar(
            np.arange(num_targets) + i * width - 0.4 + width / 2, shares, width, label=f"{name} (n={counts.sum()})"
        )
    axis.set_xticks(np.arange(num_targets))
    axis.set_xlabel("score (rounded to label)")
    axis.set_ylabel("share of documents")
    axis.set_title(title)
    axis.legend(fontsize="small")
    return save_figure(figure, path)


def plot_confusion(
    counts: np.ndarray, labels: Sequence[Any], path: Path, *, title: str, ylabel: str, xlabel: str
) -> Path:
    """A confusion matrix as a heatmap of row shares, annotated with counts."""
    counts = np.asarray(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(1 + 0.8 * len(labels), 0.8 + 0.8 * len(labels)))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(counts):
        color = "white" if shares[row, column] > 0.5 else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=color, fontsize="small")
    axis.set_xticks(range(len(labels)), [str(label) for label in labels])
    axis.set_yticks(range(len(labels)), [str(label) for label in labels])
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    figure.colorbar(image, ax=axis, label="share of row")
    return save_figure(figure, path)


def plot_agreement_heatmap(
    raters: Sequence[str], pairs: Sequence[Mapping[str, Any]], statistic: str, path: Path, title: str
) -> Path:
    """Pairwise agreement (e.g. quadratic-weighted κ) of every pair of raters as a matrix."""
    index = {rater: i for i, rater in enumerate(raters)}
    matrix = np.full((len(raters), len(raters)), np.nan)
    np.fill_diagonal(matrix, 1.0)
    for pair in pairs:
        value = pair.get(statistic)
        i, j = (index[r] for r in pair["raters"])
        matrix[i, j] = matrix[j, i] = np.nan if value is None else value
    size = 1.5 + 0.9 * len(raters)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="viridis", vmin=-1 if np.nanmin(matrix) < 0 else 0, vmax=1)
    for (row, column), value in np.ndenumerate(matrix):
        color = "black" if not np.isnan(value) and value > 0.6 else "white"
        axis.text(column, row, "–" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", color=color)
    axis.set_xticks(range(len(raters)), raters, rotation=45, ha="right")
    axis.set_yticks(range(len(raters)), raters)
    axis.set_title(title)
    figure.colorbar(image, ax=axis, label=statistic)
    return save_figure(figure, path)


def plot_differences(table: RatingTable, histogram_path: Path, boxplot_path: Path) -> list[Path]:
    """Histograms and box plots of ``second − first`` for every pair of raters, on the documents both rated."""
    differences = {}
    for i, j in combinations(range(len(table.raters)), 2):
        both = ~np.isnan(table.values[:, i]) & ~np.isnan(table.values[:, j])
        differences[f"{table.raters[j]} − {table.raters[i]}"] = table.values[both, j] - table.values[both, i]
    span = table.space.num_targets - 1
    bins = np.arange(-span - 0.5, span + 1.0, 0.5 if not _integer_valued(table.values) else 1.0)
    figure, axes = plt.subplots(len(differences), 1, figsize=(8, 2.4 * len(differences)), squeeze=False)
    for axis, (name, diff) in zip(axes[:, 0], differences.items(), strict=True):
        axis.hist(diff, bins=bins, color="tab:blue", edgecolor="black", alpha=0.8)
        axis.set_title(f"{table.task}: {name} (n={len(diff)}, mean {np.mean(diff) if len(diff) else 0:+.2f})")
        axis.set_xlabel("score difference")
        axis.set_ylabel("documents")
    figure.tight_layout()
    paths = [save_figure(figure, histogram_path)]
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(differences)), 4.5))
    axis.boxplot(list(differences.values()), showmeans=True)
    axis.set_xticks(range(1, len(differences) + 1), list(differences))
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_ylabel("score difference")
    axis.set_title(f"{table.task}: score differences between raters")
    axis.tick_params(axis="x", rotation=30)
    paths.append(save_figure(figure, boxplot_path))
    return paths


def _integer_valued(values: np.ndarray) -> bool:
    present = values[~np.isnan(values)]
    return bool(np.all(present == np.round(present)))


def plot_threshold_sweep(rows: Sequence[Mapping[str, Any]], label_threshold: float, title: str, path: Path) -> Path:
    """Precision, recall, F1 and the kept share against the classifier-score cut."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    cuts = [row["raw_cut"] for row in rows]
    for key in ("precision", "recall", "f1", "kept_fraction"):
        axis.plot(cuts, [np.nan if row[key] is None else row[key] for row in rows], label=key)
    axis.axvline(
        label_threshold, color="grey", linestyle="--", linewidth=0.8, label=f"label threshold {label_threshold:g}"
    )
    axis.set_xlabel("raw classifier score cut")
    axis.set_ylim(0, 1.02)
    axis.set_title(title)
    axis.legend(fontsize="small")
    return save_figure(figure, path)


def plot_rating_table(table: RatingTable, pairs: Sequence[Mapping[str, Any]] | None, output_dir: Path) -> list[Path]:
    """Every plot of one task's raters: distributions, agreement heatmap, differences, pairwise confusions."""
    task = safe_name(table.task)
    columns = {rater: table.values[:, i] for i, rater in enumerate(table.raters)}
    k = table.space.num_targets
    paths = [
        plot_score_distributions(
            columns, k, f"{table.task}: scores per rater", output_dir / f"{task}_score_distributions.png"
        )
    ]
    if len(table.raters) < 2:
        return paths
    if pairs is not None:
        paths.append(
            plot_agreement_heatmap(
                table.raters,
                pairs,
                "cohen_kappa_quadratic",
                output_dir / f"{task}_agreement_heatmap.png",
                f"{table.task}: pairwise quadratic-weighted Cohen's κ",
            )
        )
    paths += plot_differences(
        table,
        output_dir / f"{task}_score_differences_histogram.png",
        output_dir / f"{task}_score_differences_boxplot.png",
    )
    classes = table.classes()
    for i, j in combinations(range(len(table.raters)), 2):
        both = ~np.isnan(classes[:, i]) & ~np.isnan(classes[:, j])
        counts = np.zeros((k, k), dtype=np.int64)
        np.add.at(counts, (classes[both, i].astype(int), classes[both, j].astype(int)), 1)
        first, second = table.raters[i], table.raters[j]
        paths.append(
            plot_confusion(
                counts,
                list(table.space.classes),
                output_dir / f"{task}_confusion_{safe_name(first)}_vs_{safe_name(second)}.png",
                title=f"{table.task}: {first} vs {second}",
                ylabel=first,
                xlabel=second,
            )
        )
    return paths


def write_confusion_data(path: Path, per_task: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """One ``{"task", "label", "prediction"}`` row per test document and task (task → (labels, predictions)).

    Read by ``.dvc/plots/confusion_by_task.json``: one confusion matrix per task.
    """
    rows = [
        {"task": task, "label": str(int(a)), "prediction": str(int(b))}
        for task, (labels, predictions) in per_task.items()
        for a, b in zip(labels, predictions, strict=True)
    ]
    write_json(path, rows)
    return path


#: The threshold sweep's measures, each a line of ``.dvc/plots/lines_by_measure.json``.
SWEEP_MEASURES = ("precision", "recall", "f1", "kept_fraction")


def write_sweep_data(path: Path, per_task: Mapping[str, Sequence[Mapping[str, Any]]]) -> Path:
    """The threshold sweep in long form: ``{"task", "raw_cut", "measure", "value"}`` per task, cut and measure.

    Undefined values (``None``, e.g. precision where nothing is kept) are left out rather than drawn as 0.
    """
    rows = [
        {"task": task, "raw_cut": row["raw_cut"], "measure": measure, "value": row[measure]}
        for task, sweep in per_task.items()
        for row in sweep
        for measure in SWEEP_MEASURES
        if row.get(measure) is not None
    ]
    write_json(path, rows)
    return path


def write_distribution_data(path: Path, tables: Mapping[str, RatingTable]) -> Path:
    """``task,annotator,score,count``: how many documents each annotator gave each label, per task.

    Read by ``.dvc/plots/bars_by_annotator.json``: one panel per task, one bar colour per annotator.
    """
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "annotator", "score", "count"])
        for task, table in tables.items():
            for i, rater in enumerate(table.raters):
                counts = label_counts(table.values[:, i], table.space.num_targets)
                writer.writerows((task, rater, label, int(count)) for label, count in enumerate(counts))
    return path
