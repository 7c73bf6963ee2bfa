"""How the trained model compares with a TF-IDF baseline and how it does per language, on the validation split.

The model card should tell its reader whether the encoder earned its cost, without waiting for the evaluate stage:
training fits the evaluate stage's baseline (:class:`~mlfilter.classifiers.tfidf.TfidfClassifier` with default
settings: character n-gram TF-IDF + ridge) on the same train split, scores the **validation** split with both
(training never reads the test split), and reports per task Spearman ρ and MAE of each, the margins (model minus
baseline for ρ, baseline minus model for MAE: positive is better, as in evaluate's report) and a warning when the
model's ρ does not beat the baseline's (evaluate's rule), and per language the model's and the baseline's ρ and MAE.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from mlfilter.classifiers.tfidf import TfidfClassifier
from mlfilter.params import TaskParams
from mlfilter.training.data import LabeledData

log = logging.getLogger(__name__)

#: The baseline is fitted on at most this many training documents (its pure-Python n-gram analyzer is slow).
BASELINE_MAX_TRAIN_DOCUMENTS = 20_000
#: Languages with fewer validation documents than this get a count but no metrics.
MIN_LANGUAGE_DOCUMENTS = 20
#: Language shown for documents without one.
UNKNOWN_LANGUAGE = "unknown"


def score_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Spearman ρ and MAE of one task's scores against its labels (NaN labels left out), ``None`` where undefined
    (no labelled document, or constant scores or labels for ρ)."""
    present = ~np.isnan(labels)
    scores, labels = scores[present], labels[present]
    varies = len(labels) > 1 and np.ptp(scores) > 0 and np.ptp(labels) > 0
    return {
        "documents": int(present.sum()),
        "spearman": float(spearmanr(scores, labels).statistic) if varies else None,
        "mae": float(np.abs(scores - labels).mean()) if len(labels) else None,
    }


def validation_quality(
    train: LabeledData, val: LabeledData, val_scores: np.ndarray, tasks: Sequence[TaskParams], seed: int
) -> dict[str, Any]:
    """The model's validation scores ``[len(val), tasks]`` (in ``val`` order) against the TF-IDF baseline's.

    Returns ``{"split": "val", "tasks": {task: {"model", "baseline", "margin"}}, "per_language": {language: {task:
    {"model", "baseline"}}}, "warnings": [...]}`` (strict-JSON ready: undefined values are None); ``baseline`` and
    ``margin`` are None (with ``baseline_error``) when the baseline cannot be fitted, e.g. a task with fewer than
    two labelled training documents.
    """
    labels = np.asarray(val.labels, dtype=np.float64)
    ours = {t.name: score_metrics(val_scores[:, i], labels[:, i]) for i, t in enumerate(tasks)}
    result: dict[str, Any] = {"split": "val", "tasks": {}, "per_language": {}, "warnings": []}
    baseline_scores = None
    rows = _baseline_rows(len(train), seed)
    try:
        baseline = TfidfClassifier.fit(
            [train.texts[i] for i in rows],
            np.asarray(train.labels, dtype=np.float64)[rows],
            task_names=[t.name for t in tasks],
            num_targets=[t.num_targets for t in tasks],
            weights=None if train.weights is None else np.asarray(train.weights, dtype=np.float64)[rows],
        )
        baseline_scores = np.asarray(baseline.predict(val.texts), dtype=np.float64)
    except ValueError as exc:
        log.warning("no TF-IDF baseline for the model card: %s", exc)
        result["baseline_error"] = str(exc)
    theirs = (
        {t.name: score_metrics(baseline_scores[:, i], labels[:, i]) for i, t in enumerate(tasks)}
        if baseline_scores is not None
        else {}
    )
    for task in tasks:
        model, base = ours[task.name], theirs.get(task.name)
        margin = None
        if base is not None:
            margin = {
                "spearman": _difference(model["spearman"], base["spearman"]),
                "mae": _difference(base["mae"], model["mae"]),
            }
            margin["beats_baseline"] = None if margin["spearman"] is None else margin["spearman"] > 0
            if not margin["beats_baseline"]:
                shown = "undefined" if margin["spearman"] is None else f"{margin['spearman']:+.3f}"
                result["warnings"].append(
                    f"{task.name}: the model does not beat the TF-IDF + ridge baseline on the validation split "
                    f"(Spearman margin {shown}); try another mode, encoder or more labels"
                )
        result["tasks"][task.name] = {"model": model, "baseline": base, "margin": margin}
    languages = np.array([language or UNKNOWN_LANGUAGE for language in val.languages] or [UNKNOWN_LANGUAGE] * len(val))
    for language in sorted(set(languages)):
        rows = languages == language
        entry: dict[str, Any] = {}
        for index, task in enumerate(tasks):
            labelled = int((rows & ~np.isnan(labels[:, index])).sum())
            if labelled < MIN_LANGUAGE_DOCUMENTS:
                entry[task.name] = {"documents": labelled, "skipped": f"fewer than {MIN_LANGUAGE_DOCUMENTS} documents"}
                continue
            entry[task.name] = {
                "model": score_metrics(val_scores[rows, index], labels[rows, index]),
                "baseline": None
                if baseline_scores is None
                else score_metrics(baseline_scores[rows, index], labels[rows, index]),
            }
        result["per_language"][language] = entry
    return result


def _baseline_rows(documents: int, seed: int) -> np.ndarray:
    """The training rows the baseline is fitted on: all, or :data:`BASELINE_MAX_TRAIN_DOCUMENTS` drawn by ``seed``."""
    if documents <= BASELINE_MAX_TRAIN_DOCUMENTS:
        return np.arange(documents)
    return np.sort(np.random.default_rng(seed).choice(documents, BASELINE_MAX_TRAIN_DOCUMENTS, replace=False))


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
