"""DVC stage ``sample``: sources named in params.yaml → data/sample/ (JSONL shards), reports/sample.json."""

from __future__ import annotations

import argparse

from mlfilter.commands import sample
from mlfilter.stage import run_stage


def main() -> int:
    """Parse the command's options and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sample.add_arguments(parser)
    return sample.run(parser.parse_args())


if __name__ == "__main__":
    run_stage("sample", main)
