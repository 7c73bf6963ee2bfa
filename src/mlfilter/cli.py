"""The ``mlfilter`` command line: one subcommand per stage plus the original tool's commands.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``mlfilter --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlfilter.errors import MlfilterError

#: command name → (module implementing it, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "params": ("mlfilter.commands.params", "print the resolved, validated params.yaml"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="mlfilter", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name, _parser=command)
        _module(module_name).add_arguments(command)
    return parser


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mlfilter`` command line; user errors print one line and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(_module(args._module).run(args) or 0)
    except (MlfilterError, FileNotFoundError) as exc:
        print(f"mlfilter {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
