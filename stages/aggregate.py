"""DVC stage ``aggregate``: annotations of every annotator + sample → data/labels/, reports/aggregate.json."""

from __future__ import annotations

import argparse

from mlfilter.commands import aggregate
from mlfilter.logs import setup_logging
from mlfilter.stage import run_stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    aggregate.add_arguments(parser)
    args = parser.parse_args()
    setup_logging("aggregate")
    return aggregate.run(args)


if __name__ == "__main__":
    run_stage("aggregate", main)
