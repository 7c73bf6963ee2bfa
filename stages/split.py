"""DVC stage ``split``: data/labels/labels.jsonl.zst → data/splits/{train,val,test}.jsonl.zst, reports/split.json."""

from __future__ import annotations

import argparse

from mlfilter.commands import split
from mlfilter.stage import run_stage


def main() -> int:
    """Parse the command's options and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    split.add_arguments(parser)
    return split.run(parser.parse_args())


if __name__ == "__main__":
    run_stage("split", main)
