"""Running commands (git, dvc, stage scripts) in a test repository with this interpreter's tools on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
#: Runs ``python ARGS…`` with SIGINT back at its default first: a shell starts background jobs (``make test &``,
#: ``nohup … &``) with Ctrl-C ignored, which their children inherit, and a test that presses Ctrl-C must not hang.
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def interruptible(*args: str) -> list[str]:
    """A command line running this interpreter with ``args`` where Ctrl-C (SIGINT) reaches it, even when the test
    run itself ignores SIGINT (see :data:`_DEFAULT_SIGINT`)."""
    return [sys.executable, "-c", _DEFAULT_SIGINT, *args]


def sh(repo: Path, *command: str) -> str:
    """Run ``command`` in ``repo``; fail the test with its output when it fails; return stdout + stderr."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFILTER_PROGRESS": "0",
        "DVC_NO_ANALYTICS": "1",
    }
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr
