"""``mlfilter interrater_reliability``: agreement among annotators (or generations) as a JSON report.

mlfilter interrater_reliability data_annotated.jsonl --output_file_path output.json
mlfilter interrater_reliability a.jsonl b.jsonl --aggregation majority --output_file_path output.json
"""

from __future__ import annotations

import argparse
import os

from mlfilter.atomic import write_json
from mlfilter.evaluation.options import add_rating_arguments, read_ratings, task_list

#: Statistics printed after the report is written.
SUMMARY = ("krippendorff_alpha_ordinal", "krippendorff_alpha_interval", "fleiss_kappa", "cohen_kappa_quadratic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter interrater_reliability``."""
    add_rating_arguments(parser)
    parser.add_argument(
        "--output_file_path", "--output-file-path", required=True, help="write the metrics to this JSON file"
    )
    parser.add_argument(
        "--gold",
        metavar="NAME_OR_PATH",
        help="reference scores (e.g. humans): a rater among the inputs, or a file/folder of gold annotations or labels",
    )
    parser.add_argument("--bootstrap_samples", type=int, default=1000, help="0 turns confidence intervals off")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the bootstrap (default: %(default)s)")
    parser.add_argument("--min_language_documents", type=int, default=20, help="smallest language with its own metrics")


def run(args: argparse.Namespace) -> int:
    """Compute the agreement report and write it."""
    from mlfilter.evaluation.ratings import load_ratings

    ratings = read_ratings(args)
    # The statistics libraries load once the inputs are read: a bad input (or Ctrl-C) answers at once.
    from mlfilter.evaluation.report import json_safe, reliability_report

    gold_ratings = None
    gold_rater = None
    if args.gold is not None and os.path.exists(args.gold):
        tasks, task_names = task_list(args)
        gold_ratings = load_ratings([args.gold], tasks, aggregation="mean", task_names=task_names)
    elif args.gold is not None:
        gold_rater = args.gold
    reliability = reliability_report(
        ratings,
        gold_rater=gold_rater,
        gold=gold_ratings,
        bootstrap_samples=args.bootstrap_samples,
        confidence=args.confidence,
        seed=args.seed,
        min_language_documents=args.min_language_documents,
        strict=args.gold is None,
    )
    report = {
        "inputs": list(args.path_to_files),
        "aggregation": args.aggregation,
        "tasks": reliability,
        "annotations": ratings.counts_dict(),
    }
    write_json(args.output_file_path, json_safe(report))
    for task, entry in reliability.items():
        block = entry.get("agreement") or {}
        summary = ", ".join(f"{name} {_fmt(block.get(name))}" for name in SUMMARY)
        print(f"{task}: {len(entry['raters'])} raters, {summary}")
    print(f"wrote {args.output_file_path}")
    return 0


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"
