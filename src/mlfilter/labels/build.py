"""The aggregate stage's work: sample + annotations (+ gold) → labels, gold labels (``.jsonl.zst``), report.

Every sample document becomes a label or is counted under a reason: ``not_annotated`` (no
annotator's record was used for it), ``too_few_valid_scores`` (a task has fewer valid scores than
``min_valid_scores``) or ``majority_tie`` (``tie_break: drop``). With ``missing_task: null`` a
document is kept with ``null`` for the tasks it has no label for, if at least one task has one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.documents import read_documents
from mlfilter.errors import MlfilterError
from mlfilter.labels.aggregation import LABELLED, NO_LABEL, STATUS_REASONS, TOO_FEW, TaskLabels, aggregate_task
from mlfilter.labels.annotations import ScoreTable, read_annotations
from mlfilter.labels.params import AggregateParams
from mlfilter.labels.report import task_summary
from mlfilter.logs import progress
from mlfilter.params import TaskParams
from mlfilter.records import RecordWriter, count_records, expand_inputs, is_record_file
from mlfilter.reports import StageCounts, Stopwatch
from mlfilter.weights import WEIGHT_FIELD, inclusion_weight

log = logging.getLogger(__name__)

#: Why a sample document gets no label; reported even when zero.
DOCUMENT_REASONS = ("not_annotated", "too_few_valid_scores", "majority_tie")


def optional_inputs(paths: Sequence[str]) -> list[str]:
    """``paths`` less folders that hold no record files (an empty gold folder means no gold)."""
    kept = []
    for path in paths:
        if os.path.isdir(path) and not any(is_record_file(str(p)) for p in Path(path).rglob("*") if p.is_file()):
            log.info("%s: no record files, nothing to read", path)
            continue
        kept.append(path)
    return kept


def aggregate_table(
    table: ScoreTable, n_docs: int, tasks: Sequence[TaskParams], params: AggregateParams, *, method: str
) -> list[TaskLabels]:
    """Aggregate a score table task by task with ``method`` and the params' weights and rules."""
    weights = np.asarray([params.weight(name) for name in table.annotators], dtype=np.float64)
    row_weights = weights[table.annotator] if len(table) else np.zeros(0)
    results = []
    for position, _ in enumerate(tasks):
        rows = table.task == position
        results.append(
            aggregate_task(
                table.doc[rows],
                table.annotator[rows],
                table.score[rows],
                row_weights[rows],
                n_docs,
                method=method,
                tie_break=params.tie_break,
                min_valid_scores=params.min_valid_scores,
                rounding=params.rounding,
                dawid_skene_iterations=params.dawid_skene_iterations,
            )
        )
    return results


def document_outcome(
    results: Sequence[TaskLabels], annotated: np.ndarray, missing_task: str
) -> tuple[np.ndarray, np.ndarray]:
    """Which documents are kept, and for the others the reason (``""`` for kept ones)."""
    status = np.stack([r.status for r in results], axis=1)
    labelled = status == LABELLED
    kept = annotated & (labelled.all(axis=1) if missing_task == "drop" else labelled.any(axis=1))
    reasons = np.full(len(annotated), "not_annotated", dtype=object)
    reasons[kept] = ""
    failing = annotated & ~kept
    no_label = status[failing]
    # A task without any valid score counts as too few; among failing tasks, too few comes first.
    too_few = ((no_label == TOO_FEW) | (no_label == NO_LABEL)).any(axis=1)
    reasons[np.flatnonzero(failing)] = np.where(too_few, STATUS_REASONS[TOO_FEW], "majority_tie")
    return kept, reasons


def _number(value: float, rounding: str) -> float | int | None:
    if not np.isfinite(value):
        return None
    return int(value) if rounding != "none" else round(float(value), 6)


def _agreement_record(labels: TaskLabels, doc: int) -> dict[str, Any]:
    def rounded(x: float) -> float | None:
        return round(float(x), 4) if np.isfinite(x) else None

    entry: dict[str, Any] = {
        "n": int(labels.n[doc]),
        "std": rounded(labels.std[doc]),
        "range": rounded(labels.range[doc]),
        "agreement": rounded(labels.agreement[doc]),
        "annotators": int(labels.annotators[doc]),
    }
    if labels.confidence is not None:
        entry["confidence"] = rounded(labels.confidence[doc])
    return entry


def build_labels(
    *,
    annotations: Sequence[str],
    sample: Sequence[str],
    labels_path: str | os.PathLike[str],
    gold_path: str | os.PathLike[str],
    tasks: Sequence[TaskParams],
    params: AggregateParams,
    gold: Sequence[str] = (),
) -> dict[str, Any]:
    """Aggregate the annotations of the sample's documents; write labels and gold; return the report.

    A document with ``metadata.inclusion_probability`` (a proxy-stratified sample) gets the label field
    ``weight`` = 1 / probability (:mod:`mlfilter.weights`).
    """
    watch = Stopwatch()
    doc_index: dict[str, int] = {}
    for _, document in progress(
        read_documents(sample),
        desc="aggregate: sample documents",
        total=count_records(expand_inputs(sample)),
        unit="doc",
    ):
        doc_index[document.id] = len(doc_index)
    n_docs = len(doc_index)
    table, annotated, counts = read_annotations(annotations, doc_index, tasks, params)
    _warn_about_weights(table, params)
    log.info("aggregating %d valid scores of %d annotators with %s", len(table), len(table.annotators), params.method)
    results = aggregate_table(table, n_docs, tasks, params, method=params.method)
    kept, reasons = document_outcome(results, annotated, params.missing_task)

    gold_inputs = optional_inputs(gold)
    gold_report: dict[str, Any] = {"inputs": len(gold_inputs)}
    gold_results: list[TaskLabels] | None = None
    if gold_inputs:
        gold_table, _, gold_counts = read_annotations(gold_inputs, doc_index, tasks, params, gold=True)
        gold_params = dataclasses.replace(params, min_valid_scores=1)
        gold_results = aggregate_table(gold_table, n_docs, tasks, gold_params, method=params.gold_method)
        gold_report["annotations"] = gold_counts.as_dict()

    stage = StageCounts()
    stage.dropped.update(dict.fromkeys(DOCUMENT_REASONS, 0))
    gold_written = 0
    with RecordWriter(labels_path) as labels_out, RecordWriter(gold_path) as gold_out:
        for position, (location, document) in enumerate(
            progress(read_documents(sample, check_duplicates=False), desc="aggregate: labels", total=n_docs, unit="doc")
        ):
            if doc_index.get(document.id) != position:
                raise MlfilterError(f"{location}: the sample changed while the aggregate stage read it")
            if not kept[position]:
                stage.drop(str(reasons[position]))
                continue
            stage.keep()
            label = {
                "id": document.id,
                "text": document.text,
                "language": document.language,
                "scores": [_number(r.label[position], params.rounding) for r in results],
                "agreement": {t.name: _agreement_record(r, position) for t, r in zip(tasks, results, strict=True)},
            }
            weight = inclusion_weight(document.metadata, location)
            if weight is not None:
                label[WEIGHT_FIELD] = weight
            labels_out.write(label)
            if gold_results is not None and any(r.status[position] == LABELLED for r in gold_results):
                gold_written += 1
                gold_out.write(
                    {
                        "id": document.id,
                        "scores": [_number(r.label[position], params.rounding) for r in gold_results],
                        "n": [int(r.n[position]) for r in gold_results],
                    }
                )
    stage.check_balance()
    if gold_results is not None:
        has_gold = np.any([r.n > 0 for r in gold_results], axis=0)
        gold_report.update({"documents": int(has_gold.sum()), "written": gold_written})
        gold_report["not_in_labels"] = int((has_gold & ~kept).sum())
        # Kept documents whose reference scores give no label (a majority tie with tie_break: drop).
        gold_report["no_gold_label"] = gold_report["documents"] - gold_written - gold_report["not_in_labels"]

    seconds = watch.seconds
    return {
        "method": params.method,
        "documents": stage.as_dict(),
        "annotations": counts.as_dict(),
        "tasks": {task.name: task_summary(task, r, kept, annotated) for task, r in zip(tasks, results, strict=True)},
        "gold": gold_report,
        "seconds": round(seconds, 3),
        "docs_per_second": watch.rate(stage.seen),
        "scores_per_second": watch.rate(sum(counts.scores.values())),
    }


def _warn_about_weights(table: ScoreTable, params: AggregateParams) -> None:
    unknown = sorted(set(params.weights) - set(table.annotators))
    if unknown:
        log.warning("aggregate.weights names annotators without annotations: %s", ", ".join(unknown))
    if params.method == "dawid_skene" and any(w not in (0.0, 1.0) for w in params.weights.values()):
        log.warning("dawid_skene estimates annotator reliability itself: weights other than 0 are not used")
