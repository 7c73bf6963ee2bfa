"""``mlfilter aggregate`` / ``mlfilter split`` and the stage scripts on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from mlfilter.cli import main
from mlfilter.records import iter_records
from tests.labels.conftest import annotation, write_annotations, write_sample

ROOT = Path(__file__).resolve().parents[2]


def project_params(tmp_path: Path, **aggregate) -> Path:
    """The project's own tasks/aggregate/split sections, with ``aggregate`` overrides."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = {key: params[key] for key in ("seed", "tasks", "aggregate", "split")}
    params["aggregate"].update(aggregate)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def corpus(tmp_path: Path) -> tuple[Path, Path]:
    sample = write_sample(tmp_path / "sample", [(f"d{i}", f"text number {i}", "en") for i in range(40)])
    root = tmp_path / "annotations"
    write_annotations(root, "a", [annotation(f"d{i}", "a", {"educational": [i % 6]}) for i in range(40)])
    write_annotations(root, "b", [annotation(f"d{i}", "b", {"educational": [5]}) for i in range(30)])
    return sample, root


def test_aggregate_then_split_commands(tmp_path: Path) -> None:
    sample, root = corpus(tmp_path)
    params = project_params(tmp_path)
    labels = tmp_path / "labels" / "labels.jsonl"
    args = ["--sample", str(sample), "--annotations", str(root), "--labels", str(labels)]
    args += ["--gold-labels", str(tmp_path / "labels" / "gold.jsonl"), "--params", str(params)]
    assert main(["aggregate", *args, "--report", str(tmp_path / "agg.json"), "--method", "max"]) == 0
    report = json.loads((tmp_path / "agg.json").read_text())
    assert report["method"] == "max"
    assert report["documents"] == {
        "seen": 40,
        "kept": 40,
        "dropped": {"majority_tie": 0, "not_annotated": 0, "too_few_valid_scores": 0},
    }
    scores = [record["scores"][0] for _, record in iter_records(str(labels))]
    assert scores == [5] * 30 + [i % 6 for i in range(30, 40)]

    out = tmp_path / "splits"
    split_args = ["--labels", str(labels), "--out", str(out), "--report", str(tmp_path / "split.json")]
    assert main(["split", *split_args, "--params", str(params)]) == 0
    split_report = json.loads((tmp_path / "split.json").read_text())
    assert sum(s["count"] for s in split_report["splits"].values()) == 40
    assert sorted(p.name for p in out.iterdir()) == ["test.jsonl.zst", "train.jsonl.zst", "val.jsonl.zst"]


def test_bad_params_and_bad_input_end_with_one_clear_line(tmp_path: Path, capsys) -> None:
    sample, root = corpus(tmp_path)
    args = ["--sample", str(sample), "--annotations", str(root), "--labels", str(tmp_path / "l.jsonl")]
    args += ["--gold-labels", str(tmp_path / "g.jsonl"), "--report", str(tmp_path / "r.json")]
    assert main(["aggregate", *args, "--params", str(project_params(tmp_path, method="vote"))]) == 2
    assert "aggregate.method: expected one of 'mean'" in capsys.readouterr().err

    write_annotations(root, "c", [annotation("d1", "c", {"educational": [3]}), annotation("d2", "c", {"x": [7]})])
    with open(root / "c" / "part-00001.jsonl", "w") as handle:
        handle.write('{"id": "d3", "annotator": "c", "scores": {"educational": [6]}}\n')
    strict = project_params(tmp_path, on_bad_annotation="error")
    env = {**os.environ, "MLFILTER_PROGRESS": "0"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "aggregate.py"), *args, "--params", str(strict)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("stage aggregate: error: ")
    assert "c/part-00001.jsonl:1: field 'scores.educational[0]': 6 is outside 0..5" in last
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "l.jsonl").exists()
