"""DVC stage ``filter``: score the corpus named in params.yaml with the trained model, keep the best documents.

python stages/filter.py --params params.yaml --output data/filtered --attributes data/filter_scores \
    --reports reports/filter

The options are those of ``mlfilter filter``; ``--params`` makes params.yaml's filter section the base.
"""

from __future__ import annotations

import argparse

from mlfilter.commands import filter
from mlfilter.stage import run_stage


def main() -> int:
    """Parse the command's options and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    filter.add_arguments(parser)
    return filter.run(parser.parse_args())


if __name__ == "__main__":
    run_stage("filter", main)
