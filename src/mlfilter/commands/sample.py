"""``mlfilter sample``: a reproducible per-language sample of documents from web data (the ``sample`` stage)."""

from __future__ import annotations

import argparse
import dataclasses

from mlfilter.commands.options import add_metrics
from mlfilter.params import DEFAULT_PARAMS_FILE, load_section
from mlfilter.reports import write_headline
from mlfilter.sampling.params import SampleParams


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter sample`` (and of ``stages/sample.py``)."""
    parser.add_argument("--output", default="data/sample", help="folder of JSONL shards (default: %(default)s)")
    parser.add_argument("--report", default="reports/sample.json", help="report JSON (default: %(default)s)")
    add_metrics(parser, "reports/metrics/sample")
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")
    parser.add_argument(
        "--workers", type=int, help="worker processes instead of sample.workers (0: one per CPU); same result"
    )


def run(args: argparse.Namespace) -> int:
    """Draw the sample and write the shards, the report and the headline figures."""
    from mlfilter.sampling.pipeline import headline, run_sample

    params: SampleParams = load_section("sample", args.params)
    seed: int = load_section("seed", args.params)
    if args.workers is not None:
        params = dataclasses.replace(params, workers=args.workers)
    report = run_sample(params, seed, args.output, args.report)
    write_headline(args.metrics, headline(report))
    return 0
