"""DVC stage ``evaluate``: annotations + test split + trained model → reports/evaluate/."""

from __future__ import annotations

import argparse

from mlfilter.commands import evaluate
from mlfilter.logs import setup_logging
from mlfilter.stage import run_stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    evaluate.add_arguments(parser)
    args = parser.parse_args()
    setup_logging("evaluate")
    return evaluate.run(args)


if __name__ == "__main__":
    run_stage("evaluate", main)
