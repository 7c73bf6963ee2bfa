"""Running commands (git, dvc, stage scripts) in a test repository with this interpreter's tools on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


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
