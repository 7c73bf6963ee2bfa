"""``mlfilter plot_scores``: score distributions, differences, agreement heatmap and confusion matrices.

mlfilter plot_scores a.jsonl b.jsonl --aggregation majority --output_dir outputs
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlfilter.evaluation.options import add_rating_arguments, read_ratings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter plot_scores``."""
    add_rating_arguments(parser)
    parser.add_argument("--output_dir", "--output-dir", required=True, help="folder for the PNG files")


def run(args: argparse.Namespace) -> int:
    """Draw every plot of every task and list the files written."""
    ratings = read_ratings(args)
    # scipy and matplotlib load once the inputs are read: a bad input (or Ctrl-C) answers at once.
    from mlfilter.evaluation.agreement import pair_statistics, pairs_of
    from mlfilter.evaluation.plots import plot_rating_table

    output = Path(args.output_dir)
    written = []
    for table in ratings.tables.values():
        pairs = [pair_statistics(pair, table.space.num_targets) for pair in pairs_of(table)]
        written += plot_rating_table(table, pairs, output)
    for path in written:
        print(path)
    return 0
