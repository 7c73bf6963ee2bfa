"""An annotator removed from params.yaml leaves no trace in aggregate, its report or dvc.lock (real stages)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.pipeline_repo import REPO_ROOT, PipelineRepo

pytestmark = pytest.mark.slow

CORPUS = REPO_ROOT / "tests" / "annotation" / "data" / "documents.jsonl"


def _imported(name: str) -> dict:
    return {"backend": "import", "import_paths": [f"imports/{name}.jsonl"], "tasks": ["educational"]}


def test_removing_an_annotator_leaves_no_trace(tmp_path: Path) -> None:
    params = {
        "sample.sources": [{"type": "documents", "paths": ["corpus/documents.jsonl"]}],
        "sample.targets": {"en": 30},
        "runtime.sample.workers": 1,
        "annotate.annotators": {"judge_a": _imported("judge_a"), "judge_b": _imported("judge_b")},
    }
    repo = PipelineRepo.create(tmp_path / "repo", params)
    (repo.root / "corpus").mkdir()
    shutil.copy(CORPUS, repo.root / "corpus" / "documents.jsonl")
    ids = [json.loads(line)["id"] for line in CORPUS.read_text().splitlines()]
    (repo.root / "imports").mkdir()
    for offset, name in enumerate(("judge_a", "judge_b")):
        records = [
            {"document_id": i, "scores": [(n + offset) % 6], "meta_information": {"model_name": name}}
            for n, i in enumerate(ids)
        ]
        (repo.root / "imports" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    repo.commit("two imported annotators")

    ran = repo.repro("aggregate")
    assert {"annotate@judge_a", "annotate@judge_b", "aggregate"} <= set(ran)
    report = json.loads((repo.root / "reports" / "aggregate.json").read_text())
    assert set(report["annotations"]["annotators"]) == {"judge_a", "judge_b"}
    repo.commit("aggregated")

    repo.set_params({"annotate.annotators": {"judge_a": _imported("judge_a")}})
    status = json.loads(repo.dvc("status", "--json").stdout)
    assert "aggregate" in status and "annotate@judge_a" not in status
    ran = repo.repro("aggregate")
    assert ran == ["inputs", "aggregate"], ran
    assert sorted(p.name for p in (repo.root / "data" / "annotations").iterdir() if p.name != ".gitignore") == [
        "judge_a"
    ]
    assert (repo.root / ".mlfilter" / "removed-annotations" / "judge_b").is_dir(), "set aside, not lost"
    report = json.loads((repo.root / "reports" / "aggregate.json").read_text())
    assert set(report["annotations"]["annotators"]) == {"judge_a"}
    assert report["annotations"]["dropped"].get("unknown_id", 0) == 0
    lock = (repo.root / "dvc.lock").read_text()
    assert "judge_b" not in lock
    assert not (repo.root / "data" / "inputs" / "annotate" / "judge_b.json").exists()
    repo.commit("one annotator")
    assert set(json.loads(repo.dvc("status", "--json").stdout)) <= {"inputs", "split", "train", "evaluate", "filter"}
    assert "aggregate" not in json.loads(repo.dvc("status", "--json").stdout)
