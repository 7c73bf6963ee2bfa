"""DVC stage ``sample``: sources named in params.yaml → data/sample/ (JSONL shards), reports/sample.json."""

from __future__ import annotations

import argparse

from mlfilter.commands import sample
from mlfilter.logs import setup_logging
from mlfilter.stage import run_stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sample.add_arguments(parser)
    args = parser.parse_args()
    setup_logging("sample")
    return sample.run(args)


if __name__ == "__main__":
    run_stage("sample", main)
