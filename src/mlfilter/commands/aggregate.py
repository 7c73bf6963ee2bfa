"""``mlfilter aggregate``: one label per document and task from the scores of every annotator."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from mlfilter.commands.options import add_configured_annotators, add_metrics
from mlfilter.errors import MlfilterError
from mlfilter.labels.params import AggregateParams
from mlfilter.params import DEFAULT_PARAMS_FILE, load_section, load_tasks
from mlfilter.reports import write_headline, write_report

log = logging.getLogger("mlfilter.aggregate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter aggregate`` (and of ``stages/aggregate.py``)."""
    parser.add_argument(
        "--annotations",
        nargs="+",
        default=["data/annotations"],
        help="annotation files, folders or globs, ours or the original tool's format (default: %(default)s)",
    )
    parser.add_argument(
        "--sample", nargs="+", default=["data/sample"], help="the documents annotated (default: %(default)s)"
    )
    parser.add_argument(
        "--gold",
        nargs="*",
        default=[],
        help="reference annotations to carry to evaluate; a folder without record files means none",
    )
    parser.add_argument("--labels", default="data/labels/labels.jsonl.zst", help="labels out (default: %(default)s)")
    parser.add_argument(
        "--gold-labels", default="data/labels/gold.jsonl.zst", help="gold labels out (default: %(default)s)"
    )
    parser.add_argument("--report", default="reports/aggregate.json", help="report JSON (default: %(default)s)")
    add_metrics(parser, "reports/metrics/aggregate")
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")
    add_configured_annotators(parser)
    parser.add_argument(
        "--method",
        choices=["mean", "median", "majority", "min", "max", "dawid_skene"],
        help="use this method instead of aggregate.method",
    )


def run(args: argparse.Namespace) -> int:
    """Aggregate, write labels, gold labels and the report."""
    from mlfilter.labels.annotations import configured_annotations
    from mlfilter.labels.build import build_labels
    from mlfilter.labels.report import aggregate_headline

    params: AggregateParams = load_section("aggregate", args.params)
    annotations = args.annotations
    if args.configured_annotators:
        if len(annotations) != 1:
            raise MlfilterError("--configured-annotators: give the one folder of the annotate stages in --annotations")
        annotations = configured_annotations(annotations[0], load_section("annotate", args.params).annotators)
    if args.method:
        params = dataclasses.replace(params, method=args.method)
    report = build_labels(
        annotations=annotations,
        sample=args.sample,
        gold=args.gold,
        labels_path=args.labels,
        gold_path=args.gold_labels,
        tasks=load_tasks(args.params),
        params=params,
    )
    write_report(args.report, report)
    write_headline(args.metrics, aggregate_headline(report))
    documents = report["documents"]
    log.info(
        "%d of %d documents labelled with %s (%s dropped: %s), %.1f docs/s",
        documents["kept"],
        documents["seen"],
        params.method,
        documents["seen"] - documents["kept"],
        documents["dropped"],
        report["docs_per_second"],
    )
    return 0
