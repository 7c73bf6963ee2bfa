"""``mlfilter train`` (params.yaml) and the original tool's ``train_classifier`` / ``annotator_training_pipeline``."""

from __future__ import annotations

import argparse
import logging

from mlfilter.params import DEFAULT_PARAMS_FILE, load_section, load_tasks

log = logging.getLogger("mlfilter.train")

#: The original tool's command names; they take its YAML config instead of params.yaml.
ORIGINAL_COMMANDS = ("train_classifier", "annotator_training_pipeline")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter train``, or ``--config_file_path`` for the original tool's command names."""
    if parser.prog.rsplit(" ", 1)[-1] in ORIGINAL_COMMANDS:
        parser.add_argument(
            "--config_file_path", required=True, help="training config of the original tool (model/data/training keys)"
        )
        return
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")
    parser.add_argument("--train", default="data/splits/train.jsonl.zst", help="train split (default: %(default)s)")
    parser.add_argument("--val", default="data/splits/val.jsonl.zst", help="validation split (default: %(default)s)")
    parser.add_argument("--model", default="models/annotator/final", help="model output (default: %(default)s)")
    parser.add_argument("--live", default="reports/train", help="DVCLive folder (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Train from params.yaml, or from an original-tool config into ``<output_dir_path>/final``."""
    from mlfilter.training.original_config import load_original_config
    from mlfilter.training.run import describe, train_from_files

    if getattr(args, "config_file_path", None):
        config = load_original_config(args.config_file_path)
        result = train_from_files(
            config.train_path,
            config.val_path,
            params=config.params,
            tasks=config.tasks,
            seed=config.seed,
            output_dir=config.output_dir,
            live_dir=config.live_dir,
        )
    else:
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
