"""``mlfilter params``: print params.yaml as the stages see it, after type checks and conversions."""

from __future__ import annotations

import argparse

import yaml

from mlfilter.params import DEFAULT_PARAMS_FILE, ParamsError, load_all, to_plain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter params``."""
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")
    parser.add_argument("--section", help="print only this section")


def run(args: argparse.Namespace) -> int:
    """Validate every section and print the resolved values as YAML."""
    resolved = {name: to_plain(value) for name, value in load_all(args.params).items()}
    if args.section:
        if args.section not in resolved:
            raise ParamsError(f"{args.params}: no section {args.section!r}; sections: {', '.join(resolved)}")
        resolved = {args.section: resolved[args.section]}
    print(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True), end="")
    return 0
