"""``training.classifier: fasttext`` through real DVC: train → evaluate → filter in a temporary git repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlfilter.records import expand_inputs, iter_records
from tests.e2e.pipeline_repo import PipelineRepo
from tests.evaluation.helpers import annotation, write_annotations, write_records
from tests.training.conftest import sample_records, write_jsonl

PARAMS = {
    "training.classifier": "fasttext",
    "evaluate.bootstrap_samples": 20,
    "evaluate.min_language_documents": 2,
    "filter.keep.rule": "quantile",
    "filter.keep.fraction": 0.5,
}


def _write_inputs(root: Path, annotators: list[str]) -> list[dict]:
    """40 real FineWeb-Edu documents: the corpus, the configured annotators' scores (the LLM's stand-ins), and
    24/8/8 train/val/test splits."""
    records = [dict(r, scores=r["scores"][:1]) for r in sample_records()]
    write_jsonl(root / "data" / "sample" / "en.jsonl", [{k: r[k] for k in ("id", "text", "language")} for r in records])
    for shift, name in enumerate(annotators):
        rows = [
            annotation(r["id"], name, {"educational": [min(5, r["scores"][0] + shift * (i % 2))]})
            for i, r in enumerate(records)
        ]
        write_annotations(root / "data" / "annotations", name, rows)
    write_records(root / "data" / "splits" / "train.jsonl.zst", records[:24])
    write_records(root / "data" / "splits" / "val.jsonl.zst", records[24:32])
    write_records(root / "data" / "splits" / "test.jsonl.zst", records[32:])
    write_records(root / "data" / "labels" / "gold.jsonl.zst", [])
    return records


def _records(folder: Path) -> list[dict]:
    return [record for path in expand_inputs([str(folder)]) for _, record in iter_records(path)]


@pytest.mark.slow
def test_fasttext_trains_evaluates_and_filters_through_dvc(tmp_path: Path) -> None:
    repo = PipelineRepo.create(tmp_path / "project", PARAMS)
    records = _write_inputs(repo.root, list(repo.params()["annotate"]["annotators"]))

    for stage in ("train", "evaluate", "filter"):
        assert repo.repro("--single-item", stage) == [stage]

    model = repo.root / "models" / "annotator" / "final"
    config = json.loads((model / "mlfilter_classifier.json").read_text())
    assert config["kind"] == "fasttext" and config["task_names"] == ["educational"]
    assert not (model / "model.safetensors").exists(), "a fastText run must not save an encoder"
    lock = (repo.root / "dvc.lock").read_text()
    assert "models/annotator/final" in lock and "classifier: fasttext" in lock

    train = json.loads((repo.root / "reports" / "train" / "metrics.json").read_text())
    assert train["throughput"]["path"] == "fasttext"
    assert set(train["val"]["educational"]) >= {"spearman", "mae", "binary_f1"}

    evaluate = json.loads((repo.root / "reports" / "evaluate" / "metrics.json").read_text())
    assert "educational" in evaluate["classifier"], evaluate.keys()
    assert evaluate["documents"]["test"] == 8

    scores = _records(repo.root / "data" / "filter_scores")
    assert sorted(row["id"] for row in scores) == sorted(r["id"] for r in records)
    assert all(0.0 <= row["scores"][0] <= 5.0 for row in scores)
    assert len({row["scores"][0] for row in scores}) > 1, "fastText scores must depend on the text"
    kept = _records(repo.root / "data" / "filtered")
    assert len(kept) == 20
    best = sorted((row["scores"][0] for row in scores), reverse=True)[:20]
    assert sorted((row["scores"][0] for row in kept), reverse=True) == pytest.approx(best, abs=1e-6)
    metrics = json.loads((repo.root / "reports" / "filter" / "metrics.json").read_text())
    assert metrics["documents"]["in"] == 40 and metrics["documents"]["kept"] == 20

    assert repo.repro("--single-item", "filter") == [], "an unchanged filter stage must not rerun"
