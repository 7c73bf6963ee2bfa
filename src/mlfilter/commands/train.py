"""``mlfilter train`` (params.yaml) and the original tool's ``train_classifier`` / ``annotator_training_pipeline``."""

from __future__ import annotations

import argparse
import logging

from mlfilter.commands.options import add_metrics
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
    add_metrics(parser, "reports/metrics/train")


def run(args: argparse.Namespace) -> int:
    """Train from params.yaml, or from an original-tool config into ``<output_dir_path>/final``."""
    from mlfilter.reports import write_headline
    from mlfilter.training.original_config import load_original_config

    if getattr(args, "config_file_path", None):
        config = load_original_config(args.config_file_path)
        train, val, output_dir, live_dir = config.train_path, config.val_path, config.output_dir, config.live_dir
        params, tasks, seed = config.params, config.tasks, config.seed
    else:
        train, val, output_dir, live_dir = args.train, args.val, args.model, args.live
        params, tasks, seed = (
            load_section("training", args.params),
            load_tasks(args.params),
            load_section("seed", args.params),
        )
    # torch and transformers load once the config is read: a bad config (or Ctrl-C) answers at once.
    from mlfilter.training.metrics import headline
    from mlfilter.training.run import describe, train_from_files

    result = train_from_files(
        train, val, params=params, tasks=tasks, seed=seed, output_dir=output_dir, live_dir=live_dir
    )
    if not getattr(args, "config_file_path", None):
        write_headline(args.metrics, headline(result.summary, result.path, tasks))
    log.info(describe(result))
    return 0
