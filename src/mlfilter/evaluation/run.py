"""The evaluate stage as one call: agreement among annotators, gold metrics, the classifier on the
test split, plots, and the reports under one output folder.

Outputs in ``output_dir``: ``metrics.json`` (headline numbers for ``dvc metrics``; with a train split also the
TF-IDF baseline's and the classifier's margin over it, see :mod:`mlfilter.evaluation.baseline`), ``report.json``
(everything: pairwise statistics, confidence intervals, per-language blocks, per-class metrics,
confusion matrices, counts), ``png/`` (matplotlib figures) and ``plots/`` (DVC plot data:
``confusion.json``, ``threshold_sweep.json``, ``score_distribution.csv``, each with a ``task`` column).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.evaluation import plots
from mlfilter.evaluation.agreement import self_agreement
from mlfilter.evaluation.baseline import baseline_report, margins, warnings_for
from mlfilter.evaluation.classifier import classifier_report, load_split, predict_scores, task_columns
from mlfilter.evaluation.gold import compare_scores, gold_column
from mlfilter.evaluation.params import EvaluateParams
from mlfilter.evaluation.ratings import LabelSpace, Ratings, load_languages, load_ratings
from mlfilter.evaluation.report import headline_metrics, json_safe, reliability_report
from mlfilter.multilingual import english_only_warning, saved_encoder
from mlfilter.params import TaskParams, to_plain
from mlfilter.reports import Stopwatch, write_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateInputs:
    """Where the evaluate stage reads from: annotations (files, folders or globs), the labelled test split,
    the trained model folder, and optionally document languages (documents or labels), gold labels
    (an empty gold file means none) and the train split (for the TF-IDF baseline)."""

    annotations: tuple[str, ...]
    test: str
    model: str
    documents: str | None = None
    gold: str | None = None
    train: str | None = None


def run_evaluate(
    inputs: EvaluateInputs,
    output_dir: str | Path,
    tasks: Sequence[TaskParams],
    params: EvaluateParams,
    *,
    seed: int,
    task_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run every part of the evaluation and write the reports; returns the headline metrics."""
    output = Path(output_dir)
    watch = Stopwatch()
    languages = load_languages([inputs.documents]) if inputs.documents else None
    ratings = load_ratings(
        list(inputs.annotations),
        tasks,
        aggregation=params.aggregation,
        task_names=task_names,
        languages=languages,
        on_error="skip",
    )
    gold = load_ratings([inputs.gold], tasks, aggregation="mean", task_names=task_names) if inputs.gold else None
    reading_seconds = watch.seconds
    reliability = reliability_report(
        ratings,
        gold=gold,
        bootstrap_samples=params.bootstrap_samples,
        confidence=params.confidence,
        seed=seed,
        min_language_documents=params.min_language_documents,
        strict=False,
    )
    if params.self_agreement:
        add_self_agreement(reliability, inputs.annotations, tasks, task_names, languages)
    agreement_seconds = watch.seconds - reading_seconds

    split = load_split(inputs.test, tasks)
    inference = Stopwatch()
    raw, model_tasks, raw_labels = predict_scores(
        inputs.model,
        split.texts,
        max_length=params.max_length,
        long_documents=params.long_documents,
        device=params.device,
        dtype=params.dtype,
        desc="evaluate: scoring the test split",
    )
    columns = task_columns(model_tasks, tasks)
    predictions = raw[:, columns]
    predicted_labels = None if raw_labels is None else raw_labels[:, columns]
    inference_seconds = inference.seconds
    summaries = {task: entry.get("agreement") for task, entry in reliability.items()}
    classifier = classifier_report(
        split,
        predictions,
        tasks,
        annotator_agreement=summaries,
        sweep_step=params.sweep_step,
        min_language_documents=params.min_language_documents,
        predicted_labels=predicted_labels,
    )
    if gold is not None:
        add_classifier_gold(classifier, gold, split.ids, predictions, tasks, predicted_labels)
    baseline = None
    baseline_watch = Stopwatch()
    if inputs.train:
        baseline = baseline_report(
            inputs.train,
            split,
            tasks,
            annotator_agreement=summaries,
            sweep_step=params.sweep_step,
            min_language_documents=params.min_language_documents,
            max_train_documents=params.baseline_max_train_documents,
            seed=seed,
        )
    baseline_seconds = baseline_watch.seconds
    written = write_plots(output, ratings, reliability, split.labels, predictions, classifier, tasks)

    documents = {
        "annotated": {task: len(table.doc_ids) for task, table in ratings.tables.items()},
        "test": len(split.ids),
        "test_scored": len(split.ids),
    }
    throughput = {
        "seconds": round(watch.seconds, 3),
        "annotation_records_per_s": round(ratings.records / max(reading_seconds, 1e-9), 3),
        "agreement_seconds": round(agreement_seconds, 3),
        "inference_docs_per_s": inference.rate(len(split.ids)) if split.ids else 0.0,
        "inference_seconds": round(inference_seconds, 3),
        "baseline_seconds": round(baseline_seconds, 3),
    }
    headline = headline_metrics(reliability, classifier, {"documents": documents, "throughput": throughput})
    warnings: list[str] = []
    language_warning = english_only_warning(saved_encoder(inputs.model), split.languages)
    if language_warning is not None:
        warnings.append(language_warning)
    if baseline is not None:
        headline["baseline"] = headline_metrics({}, baseline, {})["classifier"]
        headline["margin_over_baseline"] = margins(headline["classifier"], headline["baseline"])
        warnings += warnings_for(headline["margin_over_baseline"])
    for message in warnings:
        log.warning("%s", message)
    report = {
        "params": to_plain(params),
        "seed": seed,
        "inputs": to_plain(inputs),
        "annotations": ratings.counts_dict(),
        "reliability": reliability,
        "classifier": classifier,
        "baseline": baseline,
        "margin_over_baseline": headline.get("margin_over_baseline"),
        "warnings": warnings,
        "documents": documents,
        "throughput": throughput,
        "files": sorted(str(p.relative_to(output)) for p in written),
    }
    write_report(output / "report.json", json_safe(report))
    write_report(output / "metrics.json", json_safe(headline))
    log.info(
        "evaluate: %d annotation records, %d test documents, reports in %s", ratings.records, len(split.ids), output
    )
    return headline


def add_self_agreement(
    reliability: dict[str, Any],
    annotations: Sequence[str],
    tasks: Sequence[TaskParams],
    task_names: Mapping[str, str] | None,
    languages: Mapping[str, str] | None,
) -> None:
    """Add ``self_agreement`` (annotator → agreement of its generations) to each task's reliability entry."""
    generations = load_ratings(
        list(annotations), tasks, aggregation=None, task_names=task_names, languages=languages, on_error="skip"
    )
    for task, table in generations.tables.items():
        if task in reliability:
            reliability[task]["self_agreement"] = self_agreement(table)


def add_classifier_gold(
    classifier: dict[str, Any],
    gold: Ratings,
    ids: Sequence[str],
    predictions: np.ndarray,
    tasks: Sequence[TaskParams],
    predicted_labels: np.ndarray | None = None,
) -> None:
    """Add the classifier's metrics against gold labels on the test documents that have them (label metrics from
    ``predicted_labels``, a classification head's argmax, when given)."""
    for position, task in enumerate(tasks):
        reference = gold_column(gold.tables[task.name], ids) if task.name in gold.tables else None
        if reference is not None and not np.isnan(reference).all():
            scores = np.clip(predictions[:, position], 0, task.num_targets - 1)
            classes = None if predicted_labels is None else predicted_labels[:, position]
            classifier[task.name]["gold"] = compare_scores(reference, scores, LabelSpace.of(task), classes)


def write_plots(
    output: Path,
    ratings: Ratings,
    reliability: Mapping[str, Any],
    labels: np.ndarray,
    predictions: np.ndarray,
    classifier: Mapping[str, Any],
    tasks: Sequence[TaskParams],
) -> list[Path]:
    """PNGs under ``output/png`` and DVC plot data under ``output/plots``, for every task."""
    png, data = output / "png", output / "plots"
    written: list[Path] = [plots.write_distribution_data(data / "score_distribution.csv", ratings.tables)]
    confusions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for task, table in ratings.tables.items():
        block = reliability[task].get("agreement")
        written += plots.plot_rating_table(table, block["pairwise"] if block else None, png)
        for rater, result in reliability[task].get("gold", {}).get("raters", {}).items():
            matrix = result.get("confusion_matrix")
            if matrix:
                written.append(
                    plots.plot_confusion(
                        np.array(matrix["counts"]),
                        matrix["labels"],
                        png / f"{plots.safe_name(task)}_confusion_gold_vs_{plots.safe_name(rater)}.png",
                        title=f"{task}: {rater} against gold",
                        ylabel="gold",
                        xlabel=rater,
                    )
                )
    for position, task in enumerate(tasks):
        result = classifier[task.name]
        name = plots.safe_name(task.name)
        labelled = ~np.isnan(labels[:, position])
        space = LabelSpace.of(task)
        label_classes = space.to_classes(labels[labelled, position])
        predicted_classes = space.to_classes(predictions[labelled, position])
        confusions[task.name] = (label_classes, predicted_classes)
        if "confusion_matrix" in result:
            matrix = result["confusion_matrix"]
            written.append(
                plots.plot_confusion(
                    np.array(matrix["counts"]),
                    matrix["labels"],
                    png / f"{name}_confusion_classifier.png",
                    title=f"{task.name}: classifier against test labels",
                    ylabel="label",
                    xlabel="classifier",
                )
            )
        written.append(
            plots.plot_threshold_sweep(
                result["threshold_sweep"],
                task.threshold,
                f"{task.name}: classifier cut vs label ≥ {task.threshold:g}",
                png / f"{name}_threshold_sweep.png",
            )
        )
        columns = {"test labels": labels[:, position], "classifier": np.clip(predictions[:, position], 0, None)}
        written.append(
            plots.plot_score_distributions(
                columns,
                task.num_targets,
                f"{task.name}: test labels and classifier",
                png / f"{name}_classifier_scores.png",
            )
        )
    written.append(plots.write_confusion_data(data / "confusion.json", confusions))
    sweeps = {task.name: classifier[task.name]["threshold_sweep"] for task in tasks}
    written.append(plots.write_sweep_data(data / "threshold_sweep.json", sweeps))
    return written
