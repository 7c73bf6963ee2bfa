"""DVC stage ``evaluate``: annotations + test split + trained model → reports/evaluate/."""

from __future__ import annotations

import argparse

from mlfilter.commands import evaluate
from mlfilter.stage import run_stage


def main() -> int:
    """Parse the command's options and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    evaluate.add_arguments(parser)
    return evaluate.run(parser.parse_args())


if __name__ == "__main__":
    run_stage("evaluate", main)
