"""DVC stage ``aggregate``: the configured annotators' annotations + sample → data/labels/, reports/aggregate.json."""

from __future__ import annotations

import argparse

from mlfilter.commands import aggregate
from mlfilter.stage import run_stage


def main() -> int:
    """Parse the command's options and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    aggregate.add_arguments(parser)
    return aggregate.run(parser.parse_args())


if __name__ == "__main__":
    run_stage("aggregate", main)
