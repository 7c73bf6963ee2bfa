"""DVC stage ``split``: data/labels/labels.jsonl → data/splits/{train,val,test}.jsonl, reports/split.json."""

from __future__ import annotations

import argparse

from mlfilter.commands import split
from mlfilter.logs import setup_logging
from mlfilter.stage import run_stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    split.add_arguments(parser)
    args = parser.parse_args()
    setup_logging("split")
    return split.run(args)


if __name__ == "__main__":
    run_stage("split", main)
