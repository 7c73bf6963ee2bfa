"""The baseline of every evaluation: character n-gram TF-IDF + ridge trained on the same train split.

A classifier is only worth its encoder if it beats this cheap model on the same test documents. The evaluate
stage fits :class:`~mlfilter.classifiers.tfidf.TfidfClassifier` (default settings) on the train split, scores the
test split with it exactly as it scores the classifier, and reports per task the **margin**: classifier minus
baseline for Spearman ρ, quadratic κ, accuracy, macro-F1 and F1 at the task threshold, and baseline minus
classifier for MAE, so that a positive margin always means the classifier is better. The classifier **beats the
baseline** when its Spearman margin is positive.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlfilter.classifiers.tfidf import TfidfClassifier
from mlfilter.evaluation.classifier import LabelledSplit, classifier_report, load_split
from mlfilter.params import TaskParams
from mlfilter.sampling.reservoir import priority

log = logging.getLogger(__name__)

#: Headline metrics where a larger value is better; the margin is classifier − baseline.
HIGHER_IS_BETTER = ("spearman", "cohen_kappa_quadratic", "accuracy", "macro_f1", "f1_at_threshold")
#: Headline metrics where a smaller value is better; the margin is baseline − classifier.
LOWER_IS_BETTER = ("mae",)
#: The margin that decides whether the classifier beats the baseline.
DECIDING_METRIC = "spearman"


def fit_baseline(train: LabelledSplit, tasks: Sequence[TaskParams]) -> TfidfClassifier:
    """TF-IDF + ridge on the train split's texts and labels (weighted by ``train.weights`` when present).

    Raises:
        ValueError: a task has fewer than two labelled training documents.
    """
    return TfidfClassifier.fit(
        train.texts,
        train.labels,
        task_names=[task.name for task in tasks],
        num_targets=[task.num_targets for task in tasks],
        weights=train.weights,
    )


def margins(classifier: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """Per task of ``classifier`` (headline metrics, as ``headline_metrics()['classifier']``): the margin over
    ``baseline`` for each metric, ``beats_baseline``, and under ``undefined`` the reason of each ``null`` margin
    (the metric is undefined for the classifier or the baseline)."""
    result: dict[str, Any] = {}
    for task, ours in classifier.items():
        theirs = baseline.get(task, {})
        entry: dict[str, Any] = {}
        undefined: dict[str, str] = {}
        for name in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER):
            a, b = ours.get(name), theirs.get(name)
            if a is None or b is None:
                entry[name] = None
                sides = [side for side, value in (("classifier", a), ("baseline", b)) if value is None]
                undefined[name] = f"{name} of the {' and the '.join(sides)} is undefined on the test split"
            else:
                entry[name] = a - b if name in HIGHER_IS_BETTER else b - a
        deciding = entry[DECIDING_METRIC]
        entry["beats_baseline"] = None if deciding is None else deciding > 0
        if undefined:
            entry["undefined"] = undefined
        result[task] = entry
    return result


def warnings_for(margin: Mapping[str, Any]) -> list[str]:
    """One warning per task whose classifier does not beat the baseline (or cannot be compared with it)."""
    messages = []
    for task, entry in margin.items():
        if entry["beats_baseline"] is None:
            messages.append(f"{task}: the classifier cannot be compared with the TF-IDF baseline (Spearman undefined)")
        elif not entry["beats_baseline"]:
            messages.append(
                f"{task}: the classifier does not beat the TF-IDF + ridge baseline on the test split "
                f"(Spearman margin {entry[DECIDING_METRIC]:+.3f}); try full fine-tuning, another encoder or more labels"
            )
    return messages


def subsample(split: LabelledSplit, limit: int, seed: int) -> LabelledSplit:
    """At most ``limit`` documents of ``split`` (0: all): those with the smallest seeded hash of their id."""
    if not limit or len(split.ids) <= limit:
        return split
    keys = np.array([priority(seed, doc_id) for doc_id in split.ids], dtype=np.uint64)
    rows = np.sort(np.argsort(keys, kind="stable")[:limit])
    return LabelledSplit(
        [split.ids[i] for i in rows],
        [split.texts[i] for i in rows],
        split.languages[rows],
        split.labels[rows],
        split.counts,
        None if split.weights is None else split.weights[rows],
    )


def baseline_report(
    train_path: str,
    test: LabelledSplit,
    tasks: Sequence[TaskParams],
    *,
    annotator_agreement: Mapping[str, Mapping[str, Any] | None],
    sweep_step: float,
    min_language_documents: int,
    max_train_documents: int = 0,
    seed: int = 0,
) -> dict[str, Any] | None:
    """The baseline fitted on ``train_path`` (at most ``max_train_documents`` of it, drawn by ``seed``; 0: all)
    and measured on ``test`` like the classifier (see :func:`~mlfilter.evaluation.classifier.classifier_report`),
    or None when it cannot be fitted (logged)."""
    train = subsample(load_split(train_path, tasks), max_train_documents, seed)
    try:
        model = fit_baseline(train, tasks)
    except ValueError as exc:
        log.warning("no TF-IDF baseline: %s: %s", train_path, exc)
        return None
    report = classifier_report(
        test,
        model.predict(test.texts),
        tasks,
        annotator_agreement=annotator_agreement,
        sweep_step=sweep_step,
        min_language_documents=min_language_documents,
    )
    for entry in report.values():
        entry["train_documents"] = len(train.ids)
    return report
