"""Options that several subcommands (and their stage scripts) share, defined once."""

from __future__ import annotations

import argparse


def add_dry_run(parser: argparse.ArgumentParser) -> None:
    """``--dry-run`` of the annotating commands: plan the requests, send and write nothing."""
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the requests and prompt tokens that would be sent, the cache hits and the estimated "
        "output tokens; send and write nothing",
    )


def add_configured_annotators(parser: argparse.ArgumentParser) -> None:
    """``--configured-annotators`` of aggregate and evaluate: read exactly the annotators of params.yaml."""
    parser.add_argument(
        "--configured-annotators",
        action="store_true",
        help="read ANNOTATIONS/<name> for exactly the annotators of params.yaml (annotate.annotators) and move "
        "the folders of annotators no longer there out of ANNOTATIONS (to .mlfilter/removed-annotations/)",
    )


def add_metrics(parser: argparse.ArgumentParser, default: str | None, *, unset: str = "not written") -> None:
    """``--metrics`` of every stage's command: the folder of its headline figures, which dvc.yaml declares as
    metrics (:func:`mlfilter.reports.write_headline`). Without a ``default`` the help names ``unset``: what the
    command does when the option is not given."""
    parser.add_argument(
        "--metrics",
        default=default,
        help=f"folder of the headline figures, one JSON file each, keyed by task (default: {default or unset})",
    )
