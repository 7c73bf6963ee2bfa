"""The entry point shared by the stage scripts in ``stages/``."""

from __future__ import annotations

import sys
from collections.abc import Callable

from mlfilter.errors import MlfilterError


def run_stage(name: str, main: Callable[[], int | None]) -> None:
    """Run a stage's ``main``; bad input or params end it with one clear line and exit status 2."""
    try:
        code = main()
    except (MlfilterError, FileNotFoundError) as exc:
        print(f"stage {name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(int(code or 0))
