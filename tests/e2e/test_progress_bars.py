"""Every progress bar the stages draw on a tiny run has a total, a unit and a label, and none is a one-step bar.

The stage scripts run in this process, in dvc.yaml's order and with its command lines, on a copy of the pipeline
with tiny params; every tqdm bar any library creates meanwhile is recorded (``tqdm.std.tqdm`` is the base of
tqdm.auto's, transformers' and huggingface_hub's bars alike).
"""

from __future__ import annotations

import runpy
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import tqdm.std
import yaml

from tests.e2e.conftest import TINY_PARAMS
from tests.e2e.pipeline_repo import PipelineRepo

pytestmark = pytest.mark.slow

#: The stages with a loop long enough for a bar on real data; each must draw one on the tiny run too.
STAGES_WITH_BARS = ("sample", "annotate", "aggregate", "split", "train", "evaluate", "filter")


def stage_commands(root: Path) -> list[tuple[str, list[str]]]:
    """``(stage, argv)`` for every stage of ``root``'s dvc.yaml, in file order, ``foreach`` stages expanded."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    commands = []
    for name, stage in stages.items():
        if "foreach" not in stage:
            commands.append((name, shlex.split(stage["cmd"])))
            continue
        assert stage["foreach"] == "${annotate.annotators}", "a foreach this test does not know"
        for key in params["annotate"]["annotators"]:
            commands.append((name, shlex.split(stage["do"]["cmd"].replace("${key}", key))))
    return commands


class BarRecorder:
    """Every tqdm bar drawn while it records (not disabled when created; closing disables a bar), with the
    stage that was running."""

    def __init__(self) -> None:
        self.stage = ""
        self.bars: list[tuple[str, Any]] = []


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> BarRecorder:
    """A :class:`BarRecorder` hooked into ``tqdm.std.tqdm.__init__`` for the test."""
    recording = BarRecorder()
    original = tqdm.std.tqdm.__init__

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if not self.disable:
            recording.bars.append((recording.stage, self))

    monkeypatch.setattr(tqdm.std.tqdm, "__init__", recording_init)
    return recording


def test_every_bar_of_a_tiny_run_has_a_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: BarRecorder
) -> None:
    repo = PipelineRepo.create(tmp_path / "project", TINY_PARAMS)
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("MLFILTER_PROGRESS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MLFILTER_CACHE", str(tmp_path / "requests.sqlite"))
    for stage, argv in stage_commands(repo.root):
        assert argv[:2] == ["python", f"stages/{stage}.py"], argv
        recorder.stage = stage
        monkeypatch.setattr(sys, "argv", argv[1:])
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(argv[1], run_name="__main__")
        assert exited.value.code == 0, f"stage {stage} failed: {argv}"

    shown = recorder.bars
    described = [f"{stage}: {bar.desc!r} {bar.n}/{bar.total} {bar.unit}" for stage, bar in shown]
    print("\n".join(described))
    assert {stage for stage, _ in shown} >= set(STAGES_WITH_BARS), described
    for (_, bar), line in zip(shown, described, strict=True):
        assert bar.total is not None and bar.total > 1, f"no total, or a one-step bar: {line}"
        assert bar.desc and ": " in bar.desc, f"a bar without a '<stage>: <what>' label: {line}"
        assert bar.unit != "it", f"a bar without a unit: {line}"
        assert bar.mininterval <= 1.0, f"a bar redrawn less than once a second: {line}"
        # Totals are counts, not guesses: every bar ends full (training may stop early, before its planned steps).
        assert bar.n == bar.total or (bar.desc == "train: steps" and bar.n < bar.total), f"ends off its total: {line}"
