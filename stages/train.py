"""DVC stage ``train``: fit the annotator model on the train split, select on val, save models/annotator/final."""

from __future__ import annotations

import argparse

from mlfilter.commands import train
from mlfilter.stage import run_stage


def main() -> int:
    """Parse the command's options and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    train.add_arguments(parser)
    return train.run(parser.parse_args())


if __name__ == "__main__":
    run_stage("train", main)
