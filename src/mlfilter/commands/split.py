"""``mlfilter split``: stable, stratified, leak-free train/val/test splits of the labels."""

from __future__ import annotations

import argparse
import logging

from mlfilter.commands.options import add_metrics
from mlfilter.params import DEFAULT_PARAMS_FILE, load_section, load_tasks
from mlfilter.reports import write_headline, write_report

log = logging.getLogger("mlfilter.split")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter split`` (and of ``stages/split.py``)."""
    parser.add_argument("--labels", default="data/labels/labels.jsonl.zst", help="labels in (default: %(default)s)")
    parser.add_argument(
        "--out", default="data/splits", help="folder for train/val/test.jsonl.zst (default: %(default)s)"
    )
    parser.add_argument("--report", default="reports/split.json", help="report JSON (default: %(default)s)")
    add_metrics(parser, "reports/metrics/split")
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Split the labels and write the report."""
    from mlfilter.labels.report import split_headline
    from mlfilter.labels.split import split_labels

    report = split_labels(
        labels=args.labels, out_dir=args.out, tasks=load_tasks(args.params), params=load_section("split", args.params)
    )
    write_report(args.report, report)
    write_headline(args.metrics, split_headline(report))
    log.info(
        "split %d documents: %s, %.1f docs/s",
        report["documents"]["seen"],
        {name: split["count"] for name, split in report["splits"].items()},
        report["docs_per_second"],
    )
    return 0
