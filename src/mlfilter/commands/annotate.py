"""``mlfilter annotate``: run one annotator of params.yaml outside ``dvc repro`` (same code as the stage)."""

from __future__ import annotations

import argparse
import json

from mlfilter.commands.options import add_dry_run, add_metrics
from mlfilter.params import DEFAULT_PARAMS_FILE, load_section, load_tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter annotate``."""
    parser.add_argument("--annotator", required=True, help="name under annotate.annotators in params.yaml")
    parser.add_argument("--input", nargs="+", default=["data/sample"], help="documents (default: %(default)s)")
    parser.add_argument("--output", help="annotation folder (default: data/annotations/<annotator>)")
    parser.add_argument("--report", help="report JSON (default: reports/annotate/<annotator>.json)")
    add_metrics(parser, None, unset="reports/metrics/annotate/<annotator>")
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")
    add_dry_run(parser)


def run(args: argparse.Namespace) -> int:
    """Annotate (or plan, with --dry-run), write the headline figures and print a summary."""
    from mlfilter.annotation.report import headline
    from mlfilter.annotation.runner import annotate
    from mlfilter.reports import write_headline

    section = load_section("annotate", args.params)
    result = annotate(
        args.annotator,
        section.annotator(args.annotator),
        load_tasks(args.params),
        args.input,
        args.output or f"data/annotations/{args.annotator}",
        args.report or f"reports/annotate/{args.annotator}.json",
        cache=section.cache,
        env_file=section.env_file,
        dry_run=args.dry_run,
    )
    if not args.dry_run:
        write_headline(args.metrics or f"reports/metrics/annotate/{args.annotator}", headline(result))
    print(json.dumps(result, indent=2))
    return 0
