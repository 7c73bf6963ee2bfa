"""The filter run: plan shards, score what is not scored yet, decide, write kept documents, report."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlfilter.errors import MlfilterError
from mlfilter.filtering.keep_rules import (
    CALIBRATED,
    CUT_RULES,
    KeepDecision,
    language_codes,
    rank_task_index,
    resolve_thresholds,
    select_best,
)
from mlfilter.filtering.params import FilterParams
from mlfilter.filtering.report import build_metrics, summarize, write_reports
from mlfilter.filtering.shards import (
    ShardJob,
    ShardOutcome,
    ShardSettings,
    histogram_edges,
    marker_matches,
    parquet_output_schema,
    plan_shards,
    read_attribute_table,
    remove_orphans,
    scoring_fingerprint,
    source_fingerprints,
)
from mlfilter.logs import progress_bar
from mlfilter.params import to_plain
from mlfilter.records import count_records
from mlfilter.reports import Stopwatch

log = logging.getLogger("mlfilter.filter")
RANKING_RULES = ("quantile", "token_budget")


def _record_counts(jobs: Sequence[ShardJob]) -> dict[int, int]:
    """Records per shard, for the progress totals: read concurrently (Parquet footers; JSONL lines, one extra
    decompression pass, which for remote inputs is one extra download)."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        counts = list(pool.map(lambda job: count_records([job.source]), jobs))
    return {job.index: count for job, count in zip(jobs, counts, strict=True)}


def read_calibrated_cuts(model_path: str) -> list[float | None] | None:
    """The calibrated cut per task that training stored with a saved model of any kind (None: none stored)."""
    from mlfilter.classifiers.base import ENCODER, calibrated_cuts, classifier_kind
    from mlfilter.modeling import AnnotatorConfig

    if classifier_kind(model_path) != ENCODER:
        return calibrated_cuts(model_path)
    return getattr(AnnotatorConfig.from_pretrained(model_path), "calibrated_thresholds", None)


def read_model_tasks(model_path: str) -> tuple[list[str], list[int], dict[str, float]]:
    """Task names, label counts and (when training recorded them) thresholds of a saved model of any kind."""
    from mlfilter.classifiers.base import ENCODER, classifier_kind, load_classifier
    from mlfilter.modeling import AnnotatorConfig

    if Path(model_path).is_dir() and classifier_kind(model_path) != ENCODER:
        classifier = load_classifier(model_path)
        return list(classifier.task_names), list(classifier.num_targets), {}
    if not Path(model_path, "config.json").is_file():
        raise MlfilterError(f"{model_path}: no saved model there (train one with `dvc repro train`)")
    config = AnnotatorConfig.from_pretrained(model_path)
    thresholds = getattr(config, "thresholds", None) or []
    return (
        list(config.task_names),
        list(config.num_targets_per_task),
        dict(zip(config.task_names, map(float, thresholds), strict=False)),
    )


def make_engine(params: FilterParams) -> Any:
    """The engine named by ``params.engine``."""
    if params.engine == "ray":
        from mlfilter.filtering.ray_engine import RayEngine

        return RayEngine(params.model, params.scoring, params.ray)
    from mlfilter.filtering.local import LocalEngine

    return LocalEngine(params.model, params.scoring, params.workers)


def _scoring_options(params: FilterParams, task_names: Sequence[str]) -> dict[str, Any]:
    """Every option that changes scores, for the scoring fingerprint (dtype resolved where it can be)."""
    scoring = params.scoring
    dtype = scoring.dtype
    if params.engine == "local":
        from mlfilter.filtering.engine import resolve_device, resolve_dtype
        from mlfilter.filtering.local import plan_devices

        dtype = str(resolve_dtype(dtype, resolve_device(plan_devices(scoring.device, params.workers)[0])))
    options: dict[str, Any] = {
        "max_length": scoring.max_length,
        "long_documents": scoring.long_documents,
        "dtype": dtype,
        "fields": params.fields,
        "tasks": list(task_names),
    }
    if scoring.long_documents == "chunk":
        options.update(
            chunk_aggregate=scoring.chunk_aggregate, chunk_overlap=scoring.chunk_overlap, max_chunks=scoring.max_chunks
        )
    return options


def plan_decisions(
    params: FilterParams,
    jobs: Sequence[ShardJob],
    task_names: Sequence[str],
    task_thresholds: Mapping[str, float],
    calibrated: Sequence[float | None] | None = None,
) -> tuple[dict[int, KeepDecision], dict[str, Any]]:
    """The keep decision of every shard, and a description of the rule for the report.

    ``calibrated``: the model's calibrated cuts, for ``keep.thresholds: calibrated`` (raw scores ``>=`` cut).
    """
    keep = params.keep
    info: dict[str, Any] = {"rule": keep.rule}
    if keep.rule == "all":
        decision = KeepDecision("all")
        return {job.index: decision for job in jobs}, info
    if keep.rule in CUT_RULES:
        thresholds = resolve_thresholds(keep, task_names, task_thresholds, calibrated)
        rule = "calibrated" if keep.thresholds == CALIBRATED else keep.rule
        decision = KeepDecision(rule, tuple(thresholds.get(name) for name in task_names), keep.combine)
        passes = {
            "threshold": "score rounded half up >= threshold",
            "raw_cut": "raw score >= threshold",
            "calibrated": "raw score >= the model's calibrated cut",
        }[rule]
        info.update(thresholds=thresholds, combine=keep.combine, passes=passes, calibrated=rule == "calibrated")
        return {job.index: decision for job in jobs}, info
    task = rank_task_index(keep, task_names)
    table = read_attribute_table(jobs, task)
    groups, names = language_codes(table.languages, keep.per_language)
    mask = select_best(
        table.scores, table.tokens, groups, rule=keep.rule, fraction=keep.fraction, max_tokens=keep.max_tokens
    )
    cutoffs = {}
    for code, name in enumerate(names):
        kept = mask & (groups == code)
        cutoffs[name] = float(table.scores[kept].min()) if kept.any() else None
    info.update(
        rank_by=task_names[task],
        fraction=keep.fraction,
        max_tokens=keep.max_tokens,
        per_language=keep.per_language,
        cutoffs=cutoffs,
    )
    decisions = {}
    start = 0
    for job in jobs:
        size = table.shard_sizes[job.index]
        decisions[job.index] = KeepDecision.from_mask(keep.rule, mask[start : start + size])
        start += size
    return decisions, info


def _failure_message(jobs: Sequence[ShardJob], failures: dict[int, ShardOutcome]) -> str:
    first = failures[min(failures)]
    return (
        f"{len(failures)} of {len(jobs)} shard(s) failed (the others are done and kept); "
        f"first: {first.error} — fix or remove the shard and rerun, or set filter.on_bad_shard: skip"
    )


def run_filter(
    params: FilterParams,
    *,
    output: str | Path,
    attributes: str | Path,
    reports: str | Path | None = None,
    task_thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Score the corpus of ``params.inputs`` and write kept documents, scores and reports; return the metrics.

    ``output`` receives the kept documents per input shard, ``attributes`` the scores of every document;
    ``task_thresholds`` (task name → threshold, from params.yaml ``tasks``; else the thresholds the model
    was trained with) backs the threshold rule.
    Finished shards of an earlier run with the same model, options and input are reused.
    """
    watch = Stopwatch()
    task_names, num_targets, model_thresholds = read_model_tasks(params.model)
    thresholds = {**model_thresholds, **(task_thresholds or {})}
    calibrated = read_calibrated_cuts(params.model) if params.keep.thresholds == CALIBRATED else None
    if params.keep.rule in CUT_RULES:
        resolve_thresholds(params.keep, task_names, thresholds, calibrated)
    elif params.keep.rule in RANKING_RULES:
        rank_task_index(params.keep, task_names)
    jobs = plan_shards(params.inputs, output, attributes)
    for folder, planned in ((Path(output), {j.output for j in jobs}), (Path(attributes), {j.attributes for j in jobs})):
        for orphan in remove_orphans(folder, planned):
            log.info("removed %s: its input shard is no longer part of filter.inputs", orphan)
    settings = ShardSettings(
        task_names=tuple(task_names),
        histogram_edges=histogram_edges(num_targets, params.sweep_step),
        scoring_fingerprint=scoring_fingerprint(params.model, _scoring_options(params, task_names)),
        fields=dict(params.fields),
        on_bad_record=params.on_bad_record,
        score_field=params.score_field,
        window=params.scoring.window,
        parquet_schema=parquet_output_schema(jobs, params.score_field, params.parquet_schema, task_names),
        num_targets=tuple(num_targets),
    )
    fingerprints = source_fingerprints(jobs, settings.scoring_fingerprint)
    to_score = [
        job for job in jobs if not marker_matches(job.attributes_marker, fingerprints[job.index], job.attributes)
    ]
    log.info("filter: %d shard(s), %d to score, %d already scored", len(jobs), len(to_score), len(jobs) - len(to_score))
    failures: dict[int, ShardOutcome] = {}
    scored_documents = scored_tokens = 0
    worker_seconds = 0.0
    records = _record_counts(to_score)
    with make_engine(params) as engine:
        scoring_watch = Stopwatch()
        with progress_bar(desc="filter: scoring", total=sum(records.values()), unit="doc") as bar:
            for outcome in engine.score(to_score, settings, fingerprints, bar.update):
                if _succeeded(outcome, jobs, failures):
                    scored_documents += outcome.documents
                    scored_tokens += outcome.tokens
                    worker_seconds += outcome.seconds
            bar.update(max(0, bar.total - bar.n))  # the records that were not documents, and failed shards' rest
        scoring_seconds = scoring_watch.seconds
        ready = [job for job in jobs if job.index not in failures]
        if failures and params.on_bad_shard == "fail" and params.keep.rule in RANKING_RULES:
            raise MlfilterError(_failure_message(jobs, failures) + " (ranking rules need every shard)")
        decisions, keep_info = plan_decisions(params, ready, task_names, thresholds, calibrated)
        apply_fingerprints = {
            job.index: f"{fingerprints[job.index]}:{decisions[job.index].fingerprint()}:{params.score_field}"
            f":{params.parquet_schema}"
            for job in ready
        }
        to_apply = [
            job for job in ready if not marker_matches(job.output_marker, apply_fingerprints[job.index], job.output)
        ]
        records.update(_record_counts([job for job in to_apply if job.index not in records]))
        total = sum(records[job.index] for job in to_apply)
        with progress_bar(desc="filter: writing", total=total, unit="doc") as bar:
            for outcome in engine.apply(to_apply, settings, decisions, apply_fingerprints):
                _succeeded(outcome, jobs, failures)
                bar.update(records[outcome.index])
    summary = summarize(jobs, failures, task_names, settings.histogram_edges)
    rate = 1.0 / scoring_seconds if scored_documents else 0.0
    metrics = build_metrics(
        summary,
        {
            "keep_rule": keep_info,
            "shards": {
                "total": len(jobs),
                "scored": len([j for j in to_score if j.index not in failures]),
                "reused": len(jobs) - len(to_score),
                "filtered": len([j for j in to_apply if j.index not in failures]),
                "failed": len(failures),
            },
            "failed_shards": [
                {"shard": jobs[i].source, "step": failures[i].step, "error": failures[i].error}
                for i in sorted(failures)
            ],
            "throughput": {
                "seconds": round(watch.seconds, 3),
                "documents_scored": scored_documents,
                "docs_per_s": round(scored_documents * rate, 3),
                "tokens_per_s": round(scored_tokens * rate, 3),
                "worker_docs_per_s": round(scored_documents / worker_seconds, 3) if worker_seconds else 0.0,
            },
            "engine": {"name": params.engine, "scoring": to_plain(params.scoring)},
        },
    )
    if reports is not None:
        write_reports(reports, summary, metrics)
    log.info(
        "filter: kept %d of %d documents (%d of %d tokens)",
        metrics["documents"]["kept"],
        metrics["documents"]["in"],
        metrics["tokens"]["kept"],
        metrics["tokens"]["in"],
    )
    if failures and params.on_bad_shard == "fail":
        raise MlfilterError(_failure_message(jobs, failures))
    return metrics


def _succeeded(outcome: ShardOutcome, jobs: Sequence[ShardJob], failures: dict[int, ShardOutcome]) -> bool:
    """True for a finished shard; a failed one is recorded and logged."""
    if outcome.ok:
        return True
    failures[outcome.index] = outcome
    log.error("filter: shard %s failed (%s step): %s", jobs[outcome.index].source, outcome.step, outcome.error)
    return False
