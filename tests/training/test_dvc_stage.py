"""The train stage of dvc.yaml under real DVC: `dvc exp run -S training.learning_rate=2e-5` in a git repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

from mlfilter.scores import round_statistic
from tests.evaluation.helpers import write_records
from tests.training.conftest import sample_records

ROOT = Path(__file__).parents[2]

PARAMS = """\
seed: 42
tasks:
  - name: educational
    prompt: prompts/educational_v1.yaml
    num_targets: 6
    threshold: 3
training:
  mode: frozen
  max_length: 32
  num_epochs: 2
  learning_rate: 1.0e-3
  logging_steps: 1
  early_stopping_patience: 0
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_dvc_exp_run_with_a_learning_rate_trains_a_variant(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}, sort_keys=False))
    (repo / "params.yaml").write_text(PARAMS)
    (repo / ".gitignore").write_text(".mlfilter/\nlogs/\n")
    for folder in ("stages", "src"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    records = [dict(r, scores=r["scores"][:1]) for r in sample_records()]
    write_records(repo / "data" / "splits" / "train.jsonl.zst", records[:30])
    write_records(repo / "data" / "splits" / "val.jsonl.zst", records[30:])
    _run(["git", "init", "-q"], repo)
    _run(["git", "config", "user.email", "test@example.com"], repo)
    _run(["git", "config", "user.name", "test"], repo)
    _run(["dvc", "init", "-q"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "pipeline"], repo)
    head = _run(["git", "rev-parse", "HEAD"], repo).stdout

    _run(["dvc", "exp", "run", "-S", "training.learning_rate=2e-5"], repo)

    assert "learning_rate: 2e-05" in (repo / "params.yaml").read_text()
    logged = YAML(typ="safe").load((repo / "reports" / "train" / "params.yaml").read_text())
    assert logged["learning_rate"] == 2e-05
    assert (repo / "models" / "annotator" / "final" / "model.safetensors").exists()
    assert _run(["git", "rev-parse", "HEAD"], repo).stdout == head, "the experiment moved the branch"
    assert _run(["git", "diff", "--cached", "--name-only"], repo).stdout == "", "something was staged in git"
    metrics = json.loads(_run(["dvc", "metrics", "show", "--json"], repo).stdout)[""]["data"]
    assert "reports/train/metrics.json" not in metrics, "DVCLive's summary holds timings: a report, not a metric"
    summary = json.loads((repo / "reports" / "train" / "metrics.json").read_text())
    assert set(summary["val"]["educational"]) >= {"spearman", "binary_f1", "mae"}
    assert summary["throughput"]["path"] == "frozen_embeddings"
    spearman = metrics["reports/metrics/train/val_spearman.json"]["data"]["educational"]
    assert spearman == round_statistic(summary["val"]["educational"]["spearman"])
    experiments = json.loads(_run(["dvc", "exp", "show", "--json"], repo).stdout)
    rates = [
        e["data"]["params"]["params.yaml"]["data"]["training"]["learning_rate"]
        for entry in experiments
        for e in entry.get("experiments") or []
        for e in e["revs"]
    ]
    assert 2e-05 in rates
    plots = _run(["dvc", "plots", "show", "--json"], repo).stdout
    assert "reports/train/plots/metrics/eval/spearman_educational.tsv" in plots
    assert "reports/train/calibration/educational.csv" in plots  # the reliability diagram
