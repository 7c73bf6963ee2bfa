"""Reliability reports per task, the stage's summary (``metrics.json``), its headline figures for
``dvc metrics``, and JSON-safe values."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlfilter.errors import MlfilterError
from mlfilter.evaluation.agreement import PAIR_STATISTICS, agreement, agreement_by_language
from mlfilter.evaluation.gold import gold_column, gold_report
from mlfilter.evaluation.ratings import Ratings, RatingTable, threshold_key
from mlfilter.reports import Figure

log = logging.getLogger(__name__)

#: Agreement statistics copied into the headline metrics.
AGREEMENT_HEADLINE = ("krippendorff_alpha_ordinal", "krippendorff_alpha_interval", "fleiss_kappa", *PAIR_STATISTICS)
#: Statistics of an annotator's agreement with itself across generations copied into the headline metrics.
SELF_AGREEMENT_HEADLINE = ("krippendorff_alpha_ordinal", "cohen_kappa_quadratic", "exact_agreement")
#: Classifier and gold metrics copied into the headline metrics.
QUALITY_HEADLINE = ("accuracy", "mae", "spearman", "macro_f1", "cohen_kappa_quadratic")


def reliability_report(
    ratings: Ratings,
    *,
    gold_rater: str | None = None,
    gold: Ratings | None = None,
    bootstrap_samples: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    min_language_documents: int = 20,
    strict: bool = True,
) -> dict[str, Any]:
    """Agreement (overall and per language) and gold metrics for every task.

    The gold reference is one of the raters (``gold_rater``, then left out of the agreement) or
    separate gold ratings (``gold``, e.g. ``data/labels/gold.jsonl.zst``). With ``strict`` a task with
    fewer than two raters to compare is an error; otherwise its agreement is ``null`` with the reason.
    """
    report: dict[str, Any] = {}
    for task, table in ratings.tables.items():
        entry: dict[str, Any] = {
            "raters": list(table.raters),
            "label_space": {"num_targets": table.space.num_targets, "threshold": table.space.threshold},
        }
        raters = [r for r in table.raters if r != gold_rater]
        if gold_rater is not None:
            if gold_rater not in table.raters:
                raise MlfilterError(
                    f"task {task!r}: gold annotator {gold_rater!r} has no scores; raters: {', '.join(table.raters)}"
                )
            entry["gold"] = gold_report(table.select(raters), _aligned(table, gold_rater, raters), gold_rater)
        elif gold is not None and task in gold.tables:
            reference = gold_column(gold.tables[task], table.doc_ids)
            if not np.isnan(reference).all():
                entry["gold"] = gold_report(table, reference, ", ".join(gold.tables[task].raters))
        try:
            compared = table.select(raters)
            entry["agreement"] = agreement(
                compared, bootstrap_samples=bootstrap_samples, confidence=confidence, seed=seed
            )
            entry["per_language"] = agreement_by_language(
                compared,
                min_documents=min_language_documents,
                bootstrap_samples=bootstrap_samples,
                confidence=confidence,
                seed=seed,
            )
        except MlfilterError as exc:
            if strict:
                raise
            log.warning("%s", exc)
            entry["agreement"] = None
            entry["undefined"] = {"agreement": str(exc)}
        report[task] = entry
    return report


def _aligned(table: RatingTable, gold_rater: str, raters: list[str]) -> np.ndarray:
    """The gold rater's scores on the documents :meth:`RatingTable.select` keeps for ``raters``."""
    kept = ~np.isnan(table.values[:, [table.raters.index(r) for r in raters]]).all(axis=1)
    return table.column(gold_rater)[kept]


def headline_metrics(
    reliability: Mapping[str, Any], classifier: Mapping[str, Any] | None, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The numbers ``dvc metrics diff`` compares: agreement, classifier and gold summaries per task."""
    metrics: dict[str, Any] = {"agreement": {}, "self_agreement": {}, "classifier": {}, "gold": {}}
    for task, entry in reliability.items():
        if entry.get("self_agreement"):
            metrics["self_agreement"][task] = {
                annotator: {name: block.get(name) for name in ("documents", *SELF_AGREEMENT_HEADLINE)}
                for annotator, block in entry["self_agreement"].items()
            }
        block = entry.get("agreement")
        if block is not None:
            metrics["agreement"][task] = {
                "raters": len(block["raters"]),
                "documents": block["documents"],
                **{name: block.get(name) for name in AGREEMENT_HEADLINE},
            }
        if "gold" in entry:
            metrics["gold"][task] = {
                rater: {name: result.get(name) for name in ("documents", *QUALITY_HEADLINE)}
                for rater, result in entry["gold"]["raters"].items()
            }
    for task, result in (classifier or {}).items():
        if "gold" in result:
            metrics["gold"].setdefault(task, {})["classifier"] = {
                name: result["gold"].get(name) for name in ("documents", *QUALITY_HEADLINE)
            }
    for task, result in (classifier or {}).items():
        at_threshold = result.get("binary", {}).get(threshold_key(result["threshold"]), {})
        ceiling = result["label_ceiling"]
        metrics["classifier"][task] = {
            "documents": result["documents"],
            **{name: result.get(name) for name in QUALITY_HEADLINE},
            "precision_at_threshold": at_threshold.get("precision"),
            "recall_at_threshold": at_threshold.get("recall"),
            "f1_at_threshold": at_threshold.get("f1"),
        }
        for key, statistic in (
            ("label_ceiling_ratio", "cohen_kappa_quadratic"),
            ("label_ceiling_ratio_spearman", "spearman"),
        ):
            metrics["classifier"][task][key] = ceiling[statistic]["ratio"]
            if ceiling[statistic]["ratio"] is None:
                metrics["classifier"][task][f"{key}_reason"] = ceiling[statistic]["undefined"]
        if "population_estimate" in result:
            estimate = result["population_estimate"]
            metrics["classifier"][task]["population_estimate"] = {
                **{name: estimate.get(name) for name in ("effective_documents", "mae", "spearman", "macro_f1")},
                "f1_at_threshold": estimate.get("binary", {}).get(threshold_key(result["threshold"]), {}).get("f1"),
            }
    metrics.update(extra)
    return {key: value for key, value in metrics.items() if value != {}}


def headline_figures(summary: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, dict[str, Figure]]:
    """The evaluate stage's headline figures (:func:`mlfilter.reports.write_headline`) from its summary
    (:func:`headline_metrics` plus the baseline margins): per task the annotators' Krippendorff α (ordinal) and
    mean pairwise quadratic κ, the classifier's Spearman ρ, MAE and F1 at the task threshold on the test split, its
    Spearman margin over the TF-IDF baseline and the label-ceiling ratio. ``None`` where undefined; the reasons
    are in the summary and ``report.json``."""
    agreement = summary.get("agreement", {})
    classifier = summary.get("classifier", {})
    margin = summary.get("margin_over_baseline", {})
    sources = {
        "agreement_alpha_ordinal": (agreement, "krippendorff_alpha_ordinal"),
        "agreement_kappa_quadratic": (agreement, "cohen_kappa_quadratic"),
        "test_spearman": (classifier, "spearman"),
        "test_mae": (classifier, "mae"),
        "test_f1_at_threshold": (classifier, "f1_at_threshold"),
        "margin_spearman": (margin, "spearman"),
        "label_ceiling_ratio": (classifier, "label_ceiling_ratio"),
    }
    return {name: {task: block.get(task, {}).get(key) for task in tasks} for name, (block, key) in sources.items()}


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays converted, NaN and infinities as ``null``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
