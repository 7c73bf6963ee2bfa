"""DVC stage ``train``: fit the annotator model on the train split, select on val, save models/annotator/final."""

from __future__ import annotations

import argparse

from mlfilter.logs import setup_logging
from mlfilter.params import load_section, load_tasks
from mlfilter.stage import run_stage
from mlfilter.training.run import describe, train_from_files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True, help="labelled train split (JSONL)")
    parser.add_argument("--val", required=True, help="labelled validation split (JSONL)")
    parser.add_argument("--model", required=True, help="output folder of the final model")
    parser.add_argument("--live", required=True, help="DVCLive folder (metrics.json, plots/)")
    parser.add_argument("--params", default="params.yaml", help="params file")
    args = parser.parse_args()
    log = setup_logging("train")
    result = train_from_files(
        args.train,
        args.val,
        params=load_section("training", args.params),
        tasks=load_tasks(args.params),
        seed=load_section("seed", args.params),
        output_dir=args.model,
        live_dir=args.live,
    )
    log.info(describe(result))
    return 0


if __name__ == "__main__":
    run_stage("train", main)
