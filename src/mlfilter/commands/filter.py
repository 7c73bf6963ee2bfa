"""``mlfilter filter``: score a corpus with a trained model and keep the best documents, outside DVC."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mlfilter.commands.options import add_metrics
from mlfilter.errors import MlfilterError
from mlfilter.filtering.params import FilterParams, KeepParams


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter filter``."""
    parser.add_argument("--model", help="saved AnnotatorModel folder (default: filter.model)")
    parser.add_argument("--input", action="append", help="record files, folders or globs, local or s3:// (repeatable)")
    parser.add_argument("--output", required=True, help="folder for the kept documents, one file per input shard")
    parser.add_argument("--attributes", help="folder for the scores of every document (default: OUTPUT-scores)")
    parser.add_argument("--reports", help="folder for metrics.json, score_histogram.csv, threshold_sweep.csv")
    add_metrics(parser, None)
    parser.add_argument("--params", help="start from this params file's filter: section and tasks")
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument(
        "--threshold",
        action="append",
        metavar="[TASK=]VALUE",
        help="keep documents whose score, rounded half up, is at least VALUE (FineWeb-Edu's int_score >= VALUE; "
        "on TASK, or on every task); repeatable",
    )
    rule.add_argument(
        "--raw-cut",
        action="append",
        metavar="[TASK=]VALUE",
        help="keep documents whose raw score is at least VALUE (no rounding; on TASK, or on every task); repeatable",
    )
    rule.add_argument("--quantile", type=float, metavar="FRACTION", help="keep the best FRACTION of documents")
    rule.add_argument("--token-budget", type=float, metavar="FRACTION", help="keep the best FRACTION of tokens")
    rule.add_argument("--max-tokens", type=int, metavar="N", help="keep the best documents up to N tokens")
    rule.add_argument("--keep-all", action="store_true", help="keep every document, with its scores")
    parser.add_argument("--combine", choices=["all", "any"], help="thresholds must hold on all tasks or any task")
    parser.add_argument("--rank-by", metavar="TASK", help="task whose score ranks documents for quantiles/budgets")
    parser.add_argument("--whole-corpus", action="store_true", help="rank over the whole corpus, not per language")
    parser.add_argument("--field", action="append", metavar="NAME=KEY", help="read a document field from KEY")
    parser.add_argument("--engine", choices=["local", "ray"], help="local processes or a Ray cluster")
    parser.add_argument("--workers", type=int, help="local worker processes (0: one per GPU, or one on CPU)")
    parser.add_argument("--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, or start a local one)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--max-length", type=int, help="tokens per window, special tokens included")
    parser.add_argument("--long-documents", choices=["truncate", "chunk"], help="head of long documents, or windows")
    parser.add_argument("--chunk-aggregate", choices=["mean", "max"], help="how window scores combine")
    parser.add_argument("--batch-tokens", type=int, help="padded tokens per batch")
    parser.add_argument("--on-bad-shard", choices=["fail", "skip"], help="fail at the end, or report and go on")


def _thresholds(values: list[str], task_names: list[str], option: str) -> dict[str, float]:
    thresholds: dict[str, float] = {}
    for value in values:
        task, _, number = value.rpartition("=")
        try:
            threshold = float(number)
        except ValueError:
            raise MlfilterError(f"{option} {value!r}: expected [TASK=]NUMBER") from None
        for name in [task] if task else task_names:
            thresholds[name] = threshold
    return thresholds


def build_params(args: argparse.Namespace) -> tuple[FilterParams, dict[str, float]]:
    """Filter params from ``--params`` (or the defaults) overridden by the options; plus the task thresholds."""
    from mlfilter.filtering.pipeline import read_model_tasks
    from mlfilter.params import load_section, load_tasks

    params = load_section("filter", args.params) if args.params else FilterParams()
    task_thresholds = {t.name: t.threshold for t in load_tasks(args.params)} if args.params else {}
    scoring_overrides = {
        "device": args.device,
        "dtype": args.dtype,
        "max_length": args.max_length,
        "long_documents": args.long_documents,
        "chunk_aggregate": args.chunk_aggregate,
        "token_budget": args.batch_tokens,
    }
    scoring = dataclasses.replace(params.scoring, **{k: v for k, v in scoring_overrides.items() if v is not None})
    model = args.model or params.model
    keep = params.keep
    if args.threshold:
        keep = KeepParams(
            rule="threshold", thresholds=_thresholds(args.threshold, read_model_tasks(model)[0], "--threshold")
        )
    elif args.raw_cut:
        keep = KeepParams(rule="raw_cut", thresholds=_thresholds(args.raw_cut, read_model_tasks(model)[0], "--raw-cut"))
    elif args.quantile is not None:
        keep = KeepParams(rule="quantile", fraction=args.quantile)
    elif args.token_budget is not None:
        keep = KeepParams(rule="token_budget", fraction=args.token_budget)
    elif args.max_tokens is not None:
        keep = KeepParams(rule="token_budget", max_tokens=args.max_tokens)
    elif args.keep_all:
        keep = KeepParams(rule="all")
    keep_overrides = {"combine": args.combine, "rank_by": args.rank_by}
    keep = dataclasses.replace(keep, **{k: v for k, v in keep_overrides.items() if v is not None})
    if args.whole_corpus:
        keep = dataclasses.replace(keep, per_language=False)
    overrides = {
        "model": model,
        "inputs": tuple(args.input) if args.input else None,
        "engine": args.engine,
        "workers": args.workers,
        "on_bad_shard": args.on_bad_shard,
        "fields": dict(f.split("=", 1) for f in args.field) if args.field else None,
        "ray": dataclasses.replace(params.ray, address=args.ray_address) if args.ray_address else None,
    }
    params = dataclasses.replace(
        params, scoring=scoring, keep=keep, **{k: v for k, v in overrides.items() if v is not None}
    )
    return params, task_thresholds


def run(args: argparse.Namespace) -> int:
    """Run the filter and print its headline metrics."""
    from mlfilter.filtering.pipeline import run_filter
    from mlfilter.filtering.report import headline as headline_figures
    from mlfilter.reports import write_headline

    params, task_thresholds = build_params(args)
    output = Path(args.output)
    attributes = Path(args.attributes) if args.attributes else output.with_name(output.name + "-scores")
    metrics = run_filter(
        params, output=output, attributes=attributes, reports=args.reports, task_thresholds=task_thresholds
    )
    if args.metrics:
        write_headline(args.metrics, headline_figures(metrics))
    headline = {key: metrics[key] for key in ("documents", "tokens", "kept_fraction", "shards", "throughput")}
    print(json.dumps(headline, indent=2))
    return 0
