"""The filter stage of the project's dvc.yaml, run by real DVC in a temporary git repo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlfilter.scores import round_statistic
from tests.filtering.conftest import TEST_SCORING, read_folder, write_shards
from tests.shell import sh

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def set_keep(repo: Path, **keep: Any) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["filter"]["keep"].update(keep)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_dvc_repro_filter_then_a_keep_change_reuses_the_scores(
    tmp_path: Path, model_dir: Path, documents: list[dict[str, Any]]
) -> None:
    repo = tmp_path / "repo"
    for folder in ("stages", "src"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(model_dir, repo / "models" / "annotator" / "final")
    write_shards(repo / "data" / "sample", documents, [".jsonl.zst", ".jsonl.zst"])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["filter"]["scoring"].update(max_length=TEST_SCORING.max_length, device="cpu")
    params["filter"]["keep"].update(rule="threshold", thresholds={}, combine="all")
    tasks = [
        {"name": "educational", "prompt": "p.yaml", "num_targets": 6, "threshold": 2.5},
        {"name": "style", "prompt": "s.yaml", "num_targets": 3, "threshold": 0.5},
    ]
    (repo / "params.yaml").write_text(yaml.safe_dump({"tasks": tasks, "filter": params["filter"]}, sort_keys=False))
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["filter"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"filter": stage}}, sort_keys=False))
    for command in (
        ("git", "init", "-q"),
        ("git", "config", "user.email", "t@example.org"),
        ("git", "config", "user.name", "t"),
        ("dvc", "init", "-q"),
        ("cp", "-r", str(ROOT / ".dvc" / "plots"), str(repo / ".dvc" / "plots")),  # the custom plot templates
        ("git", "add", "-A"),
        ("git", "commit", "-qm", "filter stage"),
    ):
        sh(repo, *command)

    sh(repo, "dvc", "repro", "filter")
    metrics = json.loads((repo / "reports" / "filter" / "metrics.json").read_text())
    kept = [r for records in read_folder(repo / "data" / "filtered").values() for r in records]
    assert list(read_folder(repo / "data" / "filtered")) == ["part-00000.jsonl.zst", "part-00001.jsonl.zst"]
    assert all(r["scores"][0] >= 2.5 and r["scores"][1] >= 0.5 for r in kept)
    assert metrics["documents"]["in"] == 46 and metrics["documents"]["kept"] == len(kept)
    assert "up to date" in sh(repo, "dvc", "status")
    shown = json.loads(sh(repo, "dvc", "metrics", "show", "--json"))[""]["data"]
    assert shown["reports/metrics/filter/documents.json"]["data"] == {"all": 46}
    assert shown["reports/metrics/filter/kept_fraction.json"]["data"] == {"all": round_statistic(len(kept) / 46)}
    assert "reports/filter/metrics.json" not in shown, "the report holds throughput: not a metric"
    plots = sh(repo, "dvc", "plots", "show", "--json")
    assert "threshold_sweep.csv" in plots and "score_histogram.csv" in plots

    set_keep(repo, rule="all")
    sh(repo, "dvc", "repro", "filter")
    metrics = json.loads((repo / "reports" / "filter" / "metrics.json").read_text())
    assert metrics["documents"]["kept"] == 46
    assert metrics["shards"]["reused"] == 2 and metrics["shards"]["scored"] == 0, "persisted scores are reused"
