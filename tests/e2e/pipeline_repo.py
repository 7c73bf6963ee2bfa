"""A throwaway git + DVC repository holding mlfilter's pipeline, for end-to-end tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
#: What a user's clone holds that the pipeline needs (src/ too: stages list its modules as deps).
PIPELINE_PATHS = ("dvc.yaml", "params.yaml", ".dvcignore", "stages", "prompts", "src", "data/demo", "data/gold")
_STAGE_RUN = re.compile(r"Running stage '([^']+)'")


class PipelineRepo:
    """A git + DVC repository on disk; commands run with this interpreter's environment on PATH."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "HF_HUB_OFFLINE": "1",
            "MLFILTER_PROGRESS": "0",
            "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "mlfilter tests",
            "GIT_AUTHOR_EMAIL": "tests@mlfilter.invalid",
            "GIT_COMMITTER_NAME": "mlfilter tests",
            "GIT_COMMITTER_EMAIL": "tests@mlfilter.invalid",
            **(env or {}),
        }

    @classmethod
    def create(cls, root: Path, params: dict[str, Any], env: dict[str, str] | None = None) -> PipelineRepo:
        """Copy the pipeline into ``root``, apply dotted-key ``params`` overrides, init git + DVC, commit."""
        root.mkdir(parents=True)
        for relative in PIPELINE_PATHS:
            source, target = REPO_ROOT / relative, root / relative
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        repo = cls(root, env)
        repo.set_params(params)
        repo.run("git", "init", "-q")
        repo.run("dvc", "init", "-q")
        repo.run("dvc", "config", "core.analytics", "false")
        repo.commit("pipeline")
        return repo

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run a command in the repository; on failure the assertion shows its output."""
        result = subprocess.run(
            args, cwd=self.root, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=1200
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def dvc(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        """Run ``dvc <args>``."""
        return self.run("dvc", *args, **kwargs)

    def repro(self, *args: str) -> list[str]:
        """``dvc repro``; returns the names of the stages that ran."""
        return stages_run(self.dvc("repro", *args).stdout)

    def commit(self, message: str) -> None:
        """Commit everything (DVC-tracked outputs are git-ignored by DVC)."""
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "--allow-empty", "-m", message)

    def params(self) -> dict[str, Any]:
        """The current params.yaml."""
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def set_params(self, updates: dict[str, Any]) -> None:
        """Set dotted keys (``training.learning_rate``) in params.yaml."""
        data = self.params()
        for dotted, value in updates.items():
            *parents, last = dotted.split(".")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        (self.root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def stages_run(dvc_output: str) -> list[str]:
    """Stage names from the ``Running stage '…'`` lines of ``dvc repro`` / ``dvc exp run`` output."""
    return _STAGE_RUN.findall(dvc_output)
