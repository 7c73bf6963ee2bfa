"""The trained classifier on the test split, against the split's (aggregated) labels.

Predictions are the model's continuous scores clipped into ``0 .. num_targets - 1``; label metrics
round them to the nearest label (see :mod:`mlfilter.evaluation.gold`). The **label-ceiling ratio**
puts the classifier's agreement with the labels next to the annotators' agreement with each other:

    ratio = κ_q(classifier, labels) / mean over annotator pairs of κ_q(annotator, annotator)

with κ_q the quadratic-weighted Cohen's κ; the same ratio is reported for Spearman ρ. Numerator and
denominator are reported beside each ratio. The labels aggregate several annotators, so they are
less noisy than any one annotator and a ratio above 1 is possible. When the annotators barely agree
(mean below :data:`MIN_CEILING_AGREEMENT`, "slight" agreement on the scale of Landis & Koch, 1977,
Biometrics 33(1):159–174) the denominator is mostly noise and the ratio is ``null`` with the reason.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlfilter.documents import document_from_record
from mlfilter.errors import MlfilterError
from mlfilter.evaluation.gold import compare_scores
from mlfilter.evaluation.ratings import UNKNOWN_LANGUAGE, LabelSpace
from mlfilter.evaluation.weighted import population_metrics
from mlfilter.labels.annotations import TaskResolver, parse_scores_record, valid_score
from mlfilter.params import TaskParams
from mlfilter.records import expand_inputs, iter_records
from mlfilter.scores import at_or_above
from mlfilter.weights import record_weight

log = logging.getLogger(__name__)

#: Per-language classifier metrics kept in the report (the full set is reported per task).
LANGUAGE_METRICS = ("documents", "accuracy", "mae", "spearman", "macro_f1", "cohen_kappa_quadratic")
#: Statistics the label-ceiling ratio is computed for; the first is the headline.
CEILING_STATISTICS = ("cohen_kappa_quadratic", "spearman")
#: Below this mean annotator–annotator agreement the label-ceiling ratio is undefined (Landis & Koch's "slight").
MIN_CEILING_AGREEMENT = 0.2
_SYMBOLS = {"cohen_kappa_quadratic": "κ", "spearman": "ρ"}


@dataclass
class LabelledSplit:
    """A split's documents and labels: ``labels[document, task]`` with NaN where a label is missing, and the
    inverse-probability ``weights[document]`` when any record has a ``weight`` (the others weigh 1), else None."""

    ids: list[str]
    texts: list[str]
    languages: np.ndarray
    labels: np.ndarray
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    weights: np.ndarray | None = None


def load_split(path: str, tasks: Sequence[TaskParams]) -> LabelledSplit:
    """Read a label-format split (``id``, ``text``, ``language``, ``scores`` in task order, optional ``weight``).

    A malformed record raises an error naming file, line and field. Null labels count as
    ``label_missing`` and labels outside the task's range as ``label_out_of_range``; both leave the
    document out of that task's metrics.
    """
    resolver = TaskResolver(tasks)
    ids: list[str] = []
    texts: list[str] = []
    languages: list[str] = []
    rows: list[list[float]] = []
    weights: list[float | None] = []
    counts = {task.name: Counter() for task in tasks}
    for file in expand_inputs([path]):
        for location, record in iter_records(file):
            document = document_from_record(record, location)
            weights.append(record_weight(record, location))
            parsed = parse_scores_record(record, location, resolver, gold=True)
            row = []
            for position, task in enumerate(tasks):
                value = (parsed.scores.get(position) or [None])[0]
                problem = valid_score(value, task.num_targets)
                counts[task.name]["labelled" if problem is None else _LABEL_PROBLEMS[problem]] += 1
                row.append(np.nan if problem else float(value))  # type: ignore[arg-type]
            ids.append(document.id)
            texts.append(document.text)
            languages.append(document.language or UNKNOWN_LANGUAGE)
            rows.append(row)
    labels = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(tasks))
    weighted = None
    if any(w is not None for w in weights):
        weighted = np.array([1.0 if w is None else w for w in weights], dtype=np.float64)
    return LabelledSplit(ids, texts, np.asarray(languages, dtype=object), labels, counts, weighted)


_LABEL_PROBLEMS = {"null_score": "label_missing", "out_of_range_score": "label_out_of_range"}


def predict_scores(
    model_dir: str,
    texts: Sequence[str],
    *,
    max_length: int = 512,
    long_documents: str = "truncate",
    device: str = "auto",
    dtype: str = "auto",
    desc: str | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Score texts with a saved model of any kind (:mod:`mlfilter.classifiers`): ``(scores[doc, task], task names,
    labels[doc, task])``, the labels being a classification head's argmax (None for regression heads and other
    kinds, whose label is the rounded score).

    Runs through the filter stage's scoring engine (:func:`mlfilter.filtering.engine.score_documents`), so
    the test split is scored exactly as the filter will score the corpus: same tokenization, long-text
    handling, length-sorted batches under ``torch.inference_mode()`` and precision. ``desc`` labels a progress
    bar of an encoder's token windows.
    """
    from mlfilter.classifiers.base import ENCODER, classifier_kind, load_classifier
    from mlfilter.filtering.engine import load_model, score_documents

    if os.path.isdir(model_dir) and classifier_kind(model_dir) != ENCODER:
        classifier = load_classifier(model_dir)
        return np.asarray(classifier.predict(list(texts)), dtype=np.float64), list(classifier.task_names), None
    model, tokenizer = load_model(model_dir, device, dtype)
    scored = score_documents(model, tokenizer, texts, desc, max_length=max_length, long_documents=long_documents)
    labels = None if scored.labels is None else np.asarray(scored.labels, dtype=np.float64)
    return np.asarray(scored.scores, dtype=np.float64), list(model.config.task_names), labels


def task_columns(model_tasks: Sequence[str], tasks: Sequence[TaskParams]) -> list[int]:
    """The model's output column of each task in ``tasks``; a task without a head is an error."""
    missing = [task.name for task in tasks if task.name not in model_tasks]
    if missing:
        raise MlfilterError(
            f"the trained model has no head for task(s) {', '.join(missing)}; its heads: {', '.join(model_tasks)}"
        )
    return [list(model_tasks).index(task.name) for task in tasks]


def threshold_sweep(labels: np.ndarray, scores: np.ndarray, label_threshold: float, step: float, top: float) -> list:
    """Precision, recall and F1 of the raw "score ≥ raw_cut" against "label ≥ threshold" for cuts 0, step … top.

    Labels are positive by the project's rule (:func:`mlfilter.scores.at_or_above`, the rounded label);
    the classifier side is a raw cut on its score, so the row at ``raw_cut = threshold - 0.5`` is what the
    rounded rule — ``f1_at_threshold``, keep rules, ``filter --threshold`` — gives.
    """
    positive = at_or_above(labels, label_threshold)
    rows = []
    for cut in np.round(np.arange(0.0, top + step / 2, step), 10):
        predicted = scores >= cut
        tp = int((predicted & positive).sum())
        fp = int((predicted & ~positive).sum())
        fn = int((~predicted & positive).sum())
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
        rows.append(
            {
                "raw_cut": float(cut),
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "kept_fraction": float(predicted.mean()) if len(predicted) else None,
            }
        )
    return rows


def label_ceiling(classifier: Mapping[str, Any], annotators: Mapping[str, Any] | None) -> dict[str, Any]:
    """Classifier–label agreement divided by the mean annotator–annotator agreement, per statistic.

    Returns per statistic of :data:`CEILING_STATISTICS` its numerator, denominator and ``ratio``; the ratio is
    ``None`` with the reason under ``undefined`` when either side is undefined or the annotators' agreement is
    below :data:`MIN_CEILING_AGREEMENT`.
    """
    result: dict[str, Any] = {"definition": "classifier_vs_labels / mean_annotator_pair"}
    for name in CEILING_STATISTICS:
        numerator = classifier.get(name)
        denominator = annotators.get(name) if annotators else None
        entry: dict[str, Any] = {"classifier_vs_labels": numerator, "mean_annotator_pair": denominator, "ratio": None}
        if numerator is None:
            entry["undefined"] = "the classifier–label statistic is undefined"
        elif denominator is None:
            entry["undefined"] = "no annotator–annotator agreement (fewer than two annotators, or undefined)"
        elif denominator < MIN_CEILING_AGREEMENT:
            entry["undefined"] = (
                f"annotator agreement {_SYMBOLS[name]}={denominator:.2f} is below {MIN_CEILING_AGREEMENT}; "
                "the ratio is undefined"
            )
        else:
            entry["ratio"] = numerator / denominator
        result[name] = entry
    return result


def classifier_report(
    split: LabelledSplit,
    predictions: np.ndarray,
    tasks: Sequence[TaskParams],
    *,
    annotator_agreement: Mapping[str, Mapping[str, Any] | None],
    sweep_step: float,
    min_language_documents: int,
    predicted_labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per task: the classifier's metrics against the labels, per language, the threshold sweep and the ceiling;
    with split weights also ``population_estimate`` (:func:`~mlfilter.evaluation.weighted.population_metrics`).

    ``predictions[doc, task]`` follows ``tasks``; ``predicted_labels[doc, task]`` (same order) are a classification
    head's argmax classes, which the label metrics then use instead of the rounded predictions.
    ``annotator_agreement[task]`` is the agreement summary of the annotators (for the label-ceiling ratio) or None.
    """
    report: dict[str, Any] = {}
    for position, task in enumerate(tasks):
        space = LabelSpace.of(task)
        labels = split.labels[:, position]
        scores = np.clip(predictions[:, position], 0, task.num_targets - 1)
        classes = None if predicted_labels is None else predicted_labels[:, position]
        metrics = compare_scores(labels, scores, space, classes)
        labelled = ~np.isnan(labels)
        metrics["labels"] = dict(sorted(split.counts[task.name].items()))
        metrics["threshold"] = task.threshold
        metrics["threshold_sweep"] = threshold_sweep(
            labels[labelled], scores[labelled], task.threshold, sweep_step, task.num_targets - 1
        )
        metrics["label_ceiling"] = label_ceiling(metrics, annotator_agreement.get(task.name))
        metrics["per_language"] = _per_language(split.languages, labels, scores, classes, space, min_language_documents)
        if split.weights is not None:
            metrics["population_estimate"] = population_metrics(labels, scores, split.weights, space, classes)
        report[task.name] = metrics
    return report


def _per_language(
    languages: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    space: LabelSpace,
    min_documents: int,
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for language in sorted(set(languages)):
        mask = (languages == language) & ~np.isnan(labels)
        if mask.sum() < min_documents:
            result[language] = {"documents": int(mask.sum()), "skipped": f"fewer than {min_documents} documents"}
            continue
        metrics = compare_scores(labels[mask], scores[mask], space, None if classes is None else classes[mask])
        result[language] = {key: metrics.get(key) for key in LANGUAGE_METRICS}
        if "undefined" in metrics:
            result[language]["undefined"] = metrics["undefined"]
    return result
