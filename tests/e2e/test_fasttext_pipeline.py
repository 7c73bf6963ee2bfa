"""``training.classifier: fasttext`` and ``model2vec`` through real DVC: train → evaluate → filter in a temporary git
repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlfilter.records import expand_inputs, iter_records
from tests.e2e.pipeline_repo import PipelineRepo
from tests.evaluation.helpers import annotation, write_annotations, write_records
from tests.training.conftest import SMALL_MODEL2VEC, sample_records, write_jsonl

PARAMS = {
    "evaluate.bootstrap_samples": 20,
    "evaluate.min_language_documents": 2,
    "filter.keep.rule": "quantile",
    "filter.keep.fraction": 0.5,
}
#: Per kind: its params (model2vec distils a ~2.5k-token vocabulary of MiniLM, ~7 CPU-s, instead of all 30k).
KINDS = {
    "fasttext": {"training.classifier": "fasttext"},
    "model2vec": {
        "training.classifier": "model2vec",
        "training.base_model": "embedded:all-MiniLM-L6-v2",
        "training.model2vec.pca_dims": SMALL_MODEL2VEC.pca_dims,
        "training.model2vec.token_remove_pattern": SMALL_MODEL2VEC.token_remove_pattern,
    },
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
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_text_classifier_trains_evaluates_and_filters_through_dvc(kind: str, tmp_path: Path) -> None:
    repo = PipelineRepo.create(tmp_path / "project", {**PARAMS, **KINDS[kind]})
    records = _write_inputs(repo.root, list(repo.params()["annotate"]["annotators"]))

    for stage in ("train", "evaluate", "filter"):
        assert repo.repro("--single-item", stage) == [stage]

    model = repo.root / "models" / "annotator" / "final"
    config = json.loads((model / "mlfilter_classifier.json").read_text())
    assert config["kind"] == kind and config["task_names"] == ["educational"]
    assert not (model / "model.safetensors").exists(), f"a {kind} run must not save an encoder"
    lock = (repo.root / "dvc.lock").read_text()
    assert "models/annotator/final" in lock and f"classifier: {kind}" in lock

    train = json.loads((repo.root / "reports" / "train" / "metrics.json").read_text())
    assert train["throughput"]["path"] == kind
    assert set(train["val"]["educational"]) >= {"spearman", "mae", "binary_f1"}

    evaluate = json.loads((repo.root / "reports" / "evaluate" / "metrics.json").read_text())
    assert "educational" in evaluate["classifier"], evaluate.keys()
    assert evaluate["documents"]["test"] == 8

    scores = _records(repo.root / "data" / "filter_scores")
    assert sorted(row["id"] for row in scores) == sorted(r["id"] for r in records)
    assert all(0.0 <= row["scores"][0] <= 5.0 for row in scores)
    assert len({row["scores"][0] for row in scores}) > 1, "scores must depend on the text"
    kept = _records(repo.root / "data" / "filtered")
    assert len(kept) == 20
    best = sorted((row["scores"][0] for row in scores), reverse=True)[:20]
    assert sorted((row["scores"][0] for row in kept), reverse=True) == pytest.approx(best, abs=1e-6)
    metrics = json.loads((repo.root / "reports" / "filter" / "metrics.json").read_text())
    assert metrics["documents"]["in"] == 40 and metrics["documents"]["kept"] == 20

    assert repo.repro("--single-item", "filter") == [], "an unchanged filter stage must not rerun"
    if kind == "model2vec":
        assert (model / "static_model" / "model.safetensors").is_file() and config["config"]["pca_dims"] == 32
        assert f"L2 strength {config['ridge_alpha']:g} chosen on val" in (model / "README.md").read_text()
        assert "changed" not in repo.dvc("status", "train").stdout
        repo.set_params({"training.model2vec.pca_dims": 16})
        status = repo.dvc("status", "train").stdout
        assert "changed deps" in status and "modified:" in status and "training" in status, status
