"""The entry point shared by the stage scripts in ``stages/`` and the ``mlfilter`` command line.

Both set logging (with secret masking) up once, here, and end the same way: bad input or params with
one line naming the problem (exit status 2), Ctrl-C with one line saying what was kept and how to
resume (exit status 130), never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from mlfilter.errors import MlfilterError
from mlfilter.logs import setup_logging

#: What an interrupted run of a command or stage keeps, and how to go on from there.
RESUME: dict[str, str] = {
    "sample": "finished input files are kept in the sample work_dir; rerun to resume",
    "annotate": "every finished request is in the request cache; rerun to resume without asking again",
    "score_documents": "every finished request is in the request cache; rerun to resume without asking again",
    "train": "checkpoints are kept in the checkpoint_dir; rerun with the same params to resume",
    "train_classifier": "checkpoints are kept in the checkpoint_dir; rerun with the same config to resume",
    "annotator_training_pipeline": "checkpoints are kept in the checkpoint_dir; rerun with the same config to resume",
    "filter": "finished shards are kept; rerun to score only the others",
}
DEFAULT_RESUME = "nothing was written in place (writes are atomic); rerun to start again"
INTERRUPTED_EXIT = 130


def interrupted_line(prefix: str, name: str) -> str:
    """The one line printed when ``name`` is interrupted: what was kept and how to resume."""
    return f"{prefix}: interrupted; {RESUME.get(name, DEFAULT_RESUME)}"


def guarded(prefix: str, name: str, main: Callable[[], int | None]) -> int:
    """Run ``main`` after setting logging up for ``name``; turn user errors and Ctrl-C into one line each."""
    setup_logging(name)
    try:
        return int(main() or 0)
    except KeyboardInterrupt:
        print(interrupted_line(prefix, name), file=sys.stderr)
        return INTERRUPTED_EXIT
    except (MlfilterError, FileNotFoundError) as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return 2


def run_stage(name: str, main: Callable[[], int | None]) -> None:
    """Run a stage's ``main`` through :func:`guarded` and exit with its status."""
    sys.exit(guarded(f"stage {name}", name, main))
