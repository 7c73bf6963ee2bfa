"""DVC stage ``filter``: score the corpus named in params.yaml with the trained model, keep the best documents.

python stages/filter.py --output data/filtered --attributes data/filter_scores --reports reports/filter
"""

from __future__ import annotations

import argparse

from mlfilter.filtering.pipeline import run_filter
from mlfilter.logs import setup_logging
from mlfilter.params import load_section, load_tasks
from mlfilter.stage import run_stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="kept documents, one file per input shard")
    parser.add_argument("--attributes", required=True, help="scores of every document, one file per input shard")
    parser.add_argument("--reports", required=True, help="metrics.json, score_histogram.csv, threshold_sweep.csv")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging("filter")
    params = load_section("filter", args.params)
    thresholds = {task.name: task.threshold for task in load_tasks(args.params)}
    run_filter(params, output=args.output, attributes=args.attributes, reports=args.reports, task_thresholds=thresholds)
    return 0


if __name__ == "__main__":
    run_stage("filter", main)
