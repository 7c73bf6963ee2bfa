"""The ray engine on a real local Ray (2 CPUs) gives the local engine's scores and outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlfilter.filtering.params import RayParams
from mlfilter.filtering.pipeline import run_filter
from tests.filtering.conftest import filter_params, read_folder, write_shards

pytest.importorskip("ray", reason="Ray is not installed (pip install 'mlfilter[ray]')")

#: One xdist worker runs every Ray module, one local Ray at a time (make test runs with -n).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


def run(params: Any, root: Path) -> dict[str, Any]:
    return run_filter(params, output=root / "filtered", attributes=root / "scores", task_thresholds={})


def test_ray_engine_gives_the_local_scores_and_outputs(
    tmp_path: Path, model_dir: Path, documents: list[dict[str, Any]], local_ray: None
) -> None:
    corpus = tmp_path / "corpus"
    write_shards(corpus, documents[:5] + documents[30:35], [".jsonl.zst", ".jsonl"])
    with open(corpus / "part-00001.jsonl", "a", encoding="utf-8") as handle:
        handle.write("not json\n")
    params = filter_params(corpus, model_dir)

    local = run(params, tmp_path / "local")
    on_ray = run(dataclasses.replace(params, engine="ray", ray=RayParams(batch_size=3, actors=1)), tmp_path / "ray")

    assert on_ray["documents"] == local["documents"] == {"in": 11, "kept": 10, "dropped": {"invalid_json": 1}}
    assert on_ray["tokens"] == local["tokens"]
    assert on_ray["shards"] == local["shards"]
    local_out, ray_out = read_folder(tmp_path / "local" / "filtered"), read_folder(tmp_path / "ray" / "filtered")
    assert list(ray_out) == list(local_out) == ["part-00000.jsonl.zst", "part-00001.jsonl"]
    for name in local_out:
        assert [r["id"] for r in ray_out[name]] == [r["id"] for r in local_out[name]]
        np.testing.assert_allclose(
            [r["scores"] for r in ray_out[name]], [r["scores"] for r in local_out[name]], atol=1e-4
        )
    marker = json.loads((tmp_path / "ray" / ".scores.markers" / "part-00001.jsonl.zst.done").read_text())
    assert marker["dropped"] == {"invalid_json": 1} and marker["documents"] == 5

    again = run(dataclasses.replace(params, engine="ray"), tmp_path / "ray")
    assert again["shards"]["reused"] == 2 and again["shards"]["scored"] == 0


def save_text_classifier(kind: str, texts: list[str], folder: Path) -> None:
    """Fit a classifier of ``kind`` on ``texts`` with a length-derived label (0..5) and save it to ``folder``."""
    labels = np.asarray([[min(5, len(t) // 400)] for t in texts], dtype=np.float64)
    if kind == "tfidf":
        from mlfilter.classifiers.tfidf import TfidfClassifier, TfidfConfig

        config = TfidfConfig(ngram_min=2, ngram_max=4, min_df=1, alpha=0.5)
        TfidfClassifier.fit(texts, labels, task_names=["educational"], num_targets=[6], config=config).save_pretrained(
            folder
        )
        return
    from mlfilter.training.data import LabeledData
    from mlfilter.training.params import TrainingParams
    from mlfilter.training.text_classifier import fit_classifier
    from tests.training.conftest import EDUCATIONAL, SMALL_MODEL2VEC

    data = LabeledData(texts=texts, labels=labels, ids=[], files=[])
    params = TrainingParams(
        classifier=kind, model2vec=SMALL_MODEL2VEC, embedding_cache_dir=str(folder.parent / "cache")
    )
    model, _ = fit_classifier(kind, data, data, params=params, tasks=(EDUCATIONAL,), seed=0)
    model.save_pretrained(folder)


@pytest.mark.parametrize("kind", ["tfidf", "model2vec"])
def test_ray_engine_scores_a_text_classifier_like_the_local_engine(
    kind: str, tmp_path: Path, documents: list[dict[str, Any]], local_ray: None
) -> None:
    save_text_classifier(kind, [d["text"] for d in documents], tmp_path / kind)
    corpus = tmp_path / "corpus"
    write_shards(corpus, documents[:12], [".jsonl", ".jsonl.zst"])
    params = filter_params(corpus, tmp_path / kind)

    local = run(params, tmp_path / "local")
    on_ray = run(dataclasses.replace(params, engine="ray", ray=RayParams(batch_size=5)), tmp_path / "ray")

    assert on_ray["documents"] == local["documents"] == {"in": 12, "kept": 12, "dropped": {}}
    assert on_ray["tokens"] == local["tokens"] and on_ray["shards"] == local["shards"]
    local_out, ray_out = read_folder(tmp_path / "local" / "filtered"), read_folder(tmp_path / "ray" / "filtered")
    assert list(ray_out) == list(local_out) == ["part-00000.jsonl", "part-00001.jsonl.zst"]
    for name in local_out:
        assert [r["id"] for r in ray_out[name]] == [r["id"] for r in local_out[name]]
        scores = [r["scores"] for r in ray_out[name]]
        np.testing.assert_allclose(scores, [r["scores"] for r in local_out[name]], atol=1e-6)
        assert len({round(s[0], 4) for s in scores}) > 1, "scores must vary with the text"
