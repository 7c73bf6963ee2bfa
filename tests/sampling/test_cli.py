"""``mlfilter sample`` on the command line, and ``dvc repro sample`` in a fresh repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlfilter.cli import main
from tests.sampling.helpers import multilingual_warc, read_output

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PARAMS = {
    "sources": [{"type": "warc", "paths": ["data/demo/test.warc.gz"]}],
    "targets": {"en": 2, "de": 2, "ko": 1},
    "extractor": "resiliparse",
    "min_chars": 100,
    "workers": 1,
}


def write_project(root: Path, sample: dict) -> None:
    multilingual_warc(root / "data" / "demo" / "test.warc.gz")
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 3, "sample": sample}), "utf-8")


def test_mlfilter_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path, SAMPLE_PARAMS)
    assert main(["sample", "--output", "out", "--report", "report.json", "--workers", "2"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["documents_kept"] == 5 == len(read_output(tmp_path / "out"))
    write_project(tmp_path, {**SAMPLE_PARAMS, "targets": {"xx": 1}})
    assert main(["sample", "--output", "out", "--report", "report.json"]) == 2
    assert "py3langid does not identify xx" in capsys.readouterr().err


@pytest.mark.slow
def test_dvc_repro_sample(tmp_path: Path) -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text("utf-8"))["stages"]
    (tmp_path / "stages").mkdir()
    for script in ("inputs.py", "sample.py"):  # sample depends on the source hashes the inputs stage records
        shutil.copy(REPO / "stages" / script, tmp_path / "stages" / script)
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    pipeline = {"stages": {"inputs": stages["inputs"], "sample": stages["sample"]}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(pipeline), "utf-8")
    write_project(tmp_path, SAMPLE_PARAMS)
    # The inputs stage also hashes the tasks' prompts and the annotators' files: the project's tasks, no annotator.
    params = yaml.safe_load((tmp_path / "params.yaml").read_text("utf-8"))
    params["tasks"] = yaml.safe_load((REPO / "params.yaml").read_text("utf-8"))["tasks"]
    params["annotate"] = {"annotators": {}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), "utf-8")
    shutil.copytree(REPO / "prompts", tmp_path / "prompts")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["MLFILTER_PROGRESS"] = "0"
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "sample"]):
        subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    report = json.loads((tmp_path / "reports" / "sample.json").read_text())
    records = report["records"]
    assert records["seen"] == records["kept"] + sum(records["dropped"].values())
    assert len(read_output(tmp_path / "data" / "sample")) == records["kept"] == 5
    metrics = subprocess.run(
        ["dvc", "metrics", "show", "--json"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    shown = json.loads(metrics.stdout)[""]["data"]
    assert shown["reports/metrics/sample/records_read.json"]["data"] == {"all": records["seen"]}
    assert shown["reports/metrics/sample/documents_kept.json"]["data"] == {"all": 5}
    assert "reports/sample.json" not in shown, "the report holds throughput: not a metric"
    status = subprocess.run(
        ["dvc", "status", "sample"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    assert "sample" not in status.stdout, status.stdout  # only the always-changed inputs stage may be listed
