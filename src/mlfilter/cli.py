"""The ``mlfilter`` command line: one subcommand per stage plus the original tool's commands.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``mlfilter --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlfilter import __version__
from mlfilter.stage import INTERRUPTED_EXIT, guarded

#: command name → (module implementing it, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "params": ("mlfilter.commands.params", "print the resolved, validated params.yaml"),
    "sample": ("mlfilter.commands.sample", "reproducible per-language sample of Common Crawl or local corpora"),
    "proxy_sample": ("mlfilter.commands.proxy_sample", "choose what to annotate: over-sample by a cheap proxy score"),
    "annotate": ("mlfilter.commands.annotate", "score documents with one LLM annotator of params.yaml (cached)"),
    "score_documents": ("mlfilter.commands.score_documents", "the original tool's command: score JSONL with an LLM"),
    "aggregate": ("mlfilter.commands.aggregate", "one label per document and task from every annotator's scores"),
    "split": ("mlfilter.commands.split", "stable, stratified, leak-free train/val/test splits of the labels"),
    "train": ("mlfilter.commands.train", "train the annotator model on the train split, selecting on val"),
    "train_classifier": ("mlfilter.commands.train", "the original tool's command: train from its YAML config"),
    "annotator_training_pipeline": ("mlfilter.commands.train", "the original tool's other name for train_classifier"),
    "evaluate": ("mlfilter.commands.evaluate", "annotator agreement, gold metrics, classifier on the test split"),
    "interrater_reliability": ("mlfilter.commands.interrater_reliability", "agreement among annotators as JSON"),
    "plot_scores": ("mlfilter.commands.plot_scores", "plot score distributions, differences and agreement"),
    "filter": ("mlfilter.commands.filter", "score a corpus with a trained model and keep the best documents"),
    "translate-prompt": ("mlfilter.commands.translate_prompt", "translate a prompt file into more languages"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser listing every subcommand; only ``selected`` gets its options (and its imports)."""
    parser = argparse.ArgumentParser(
        prog="mlfilter", description="Build machine-learning quality filters for LLM pretraining data."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name, _parser=command)
        if name == selected:
            _module(module_name).add_arguments(command)
    return parser


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mlfilter`` command line.

    Logging and secret masking are set up once here for every command; user errors print one line
    and exit with status 2, Ctrl-C prints one line (what was kept, how to resume) and exits with 130.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = arguments[0] if arguments and arguments[0] in COMMANDS else None
    try:
        args = build_parser(selected).parse_args(arguments)
    except KeyboardInterrupt:
        print("mlfilter: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    return guarded(f"mlfilter {args.command}", args.command, lambda: _module(args._module).run(args))


if __name__ == "__main__":
    sys.exit(main())
