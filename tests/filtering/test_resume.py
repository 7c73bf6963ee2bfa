"""Kill -9 in the middle of a filter run, rerun: the output is byte-identical to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from mlfilter.filtering.pipeline import run_filter
from mlfilter.params import load_section
from tests.filtering.conftest import TEST_SCORING, file_bytes, write_shards

SHARDS = 8


def command(params: Path, root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlfilter.cli",
        "filter",
        "--params",
        str(params),
        "--output",
        str(root / "filtered"),
        "--attributes",
        str(root / "scores"),
    ]


def test_kill_9_mid_run_then_rerun_gives_the_uninterrupted_output(
    tmp_path: Path, model_dir: Path, documents: list[dict[str, Any]]
) -> None:
    corpus = tmp_path / "corpus"
    write_shards(corpus, documents, [".jsonl.zst"] * SHARDS)
    params = tmp_path / "params.yaml"
    scoring = {"max_length": TEST_SCORING.max_length, "device": "cpu", "window": 2}
    params.write_text(
        yaml.safe_dump(
            {
                "tasks": [{"name": "educational", "prompt": "p.yaml", "num_targets": 6, "threshold": 2.5}],
                "filter": {
                    "inputs": [str(corpus)],
                    "model": str(model_dir),
                    "scoring": scoring,
                    "keep": {"rule": "threshold", "thresholds": {"educational": 2.5}},
                },
            }
        )
    )
    env = {**os.environ, "MLFILTER_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}

    def run(root: Path) -> None:
        result = subprocess.run(command(params, root), cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    reference = tmp_path / "uninterrupted"
    run_filter(
        load_section("filter", params),
        output=reference / "filtered",
        attributes=reference / "scores",
        task_thresholds={"educational": 2.5},
    )

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(params, killed), cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list((killed / ".scores.markers").glob("*.done"))) < 2:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no shard finished in time"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list((killed / ".scores.markers").glob("*.done")))
    assert finished < SHARDS and not list((killed / ".filtered.markers").glob("*.done")), "killed in the middle"

    run(killed)
    expected = file_bytes(reference)
    assert file_bytes(killed) == expected
    assert len([name for name in expected if name.startswith("filtered/")]) == SHARDS
