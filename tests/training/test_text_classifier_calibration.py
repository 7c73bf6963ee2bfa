"""fastText, TF-IDF and model2vec models are calibrated on val like the encoder; ``keep.thresholds: calibrated`` uses
the cut."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlfilter.classifiers.base import CONFIG_NAME, load_classifier
from mlfilter.filtering.params import FilterParams, KeepParams, ScoringParams
from mlfilter.filtering.pipeline import run_filter
from mlfilter.training.calibration import calibrate_cut
from mlfilter.training.data import read_labeled
from mlfilter.training.run import train_from_files
from tests.training.conftest import EDUCATIONAL, SMALL_MODEL2VEC, write_jsonl


@pytest.mark.parametrize("kind", ["tfidf", "fasttext", "model2vec"])
def test_text_classifier_stores_the_val_cut_and_the_filter_keeps_at_it(
    kind: str, tmp_path: Path, splits, tiny_params, capfd: pytest.CaptureFixture[str]
) -> None:
    if kind == "fasttext":
        pytest.importorskip("fasttext", reason="fastText is the optional 'fasttext' extra")
    train_path, val_path = splits(1)
    train_from_files(
        str(train_path),
        str(val_path),
        params=tiny_params(classifier=kind, model2vec=SMALL_MODEL2VEC),
        tasks=(EDUCATIONAL,),
        seed=3,
        output_dir=tmp_path / "final",
        live_dir=tmp_path / "live",
    )
    val = read_labeled(str(val_path), (EDUCATIONAL,))
    scores = load_classifier(tmp_path / "final").predict(val.texts)[:, 0]
    expected = calibrate_cut(scores, val.labels[:, 0].astype(np.float64), EDUCATIONAL.threshold)
    assert expected.cut is not None and 0 < expected.positives < len(val.texts)
    config = json.loads((tmp_path / "final" / CONFIG_NAME).read_text(encoding="utf-8"))
    assert config["calibrated_thresholds"] == [pytest.approx(expected.cut)]
    assert config["calibration_method"] == "max_smoothed_f1"
    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["calibration"]["educational"]["cut"] == pytest.approx(expected.cut)
    card = (tmp_path / "final" / "README.md").read_text(encoding="utf-8")
    assert f"{expected.cut:.4f}" in card
    if kind == "model2vec":
        assert "Encoding tokens" not in capfd.readouterr().err, "model2vec's own bar ignores MLFILTER_PROGRESS=0"
        chosen = metrics["best"]
        assert chosen["ridge_alpha"] == config["ridge_alpha"] and metrics["throughput"]["distill_seconds"] > 0
        assert f"L2 strength {chosen['ridge_alpha']:g} chosen on val by spearman_mean" in card

    corpus = write_jsonl(
        tmp_path / "corpus" / "part-0.jsonl",
        [{"id": f"doc-{i}", "text": text, "language": "en"} for i, text in enumerate(val.texts)],
    )
    report = run_filter(
        FilterParams(
            inputs=(str(corpus),),
            model=str(tmp_path / "final"),
            scoring=ScoringParams(device="cpu"),
            keep=KeepParams(rule="threshold", thresholds="calibrated"),
        ),
        output=tmp_path / "out",
        attributes=tmp_path / "attrs",
        task_thresholds={},
    )
    kept = [json.loads(line)["id"] for line in (tmp_path / "out" / "part-0.jsonl").read_text().splitlines()]
    assert kept == [f"doc-{i}" for i in np.flatnonzero(scores >= expected.cut)]
    assert 0 < len(kept) < len(val.texts)
    assert report["documents"]["dropped"]["below_calibrated_threshold"] == len(val.texts) - len(kept)
