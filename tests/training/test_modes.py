"""training.mode auto keeps the better candidate on val; the kept model carries calibrated cuts the filter uses."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from mlfilter.filtering.params import FilterParams, KeepParams, ScoringParams
from mlfilter.filtering.pipeline import run_filter
from mlfilter.modeling import AnnotatorModel
from mlfilter.training.calibration import calibrate_cut, reliability_table
from mlfilter.training.data import read_labeled
from mlfilter.training.run import train_from_files
from tests.training.conftest import EDUCATIONAL, write_jsonl


def _scores(model_dir: Path, texts: list[str], max_length: int) -> np.ndarray:
    model = AnnotatorModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).scores[:, 0].double().numpy()


def test_auto_keeps_the_better_mode_on_val_and_the_filter_keeps_at_its_calibrated_cut(
    tmp_path: Path, splits, tiny_params
) -> None:
    train_path, val_path = splits(1)
    params = tiny_params(
        mode="auto",
        finetune_num_epochs=1,
        finetune_learning_rate=1e-4,
        finetune_max_length=32,
        finetune_batch_size=8,
    )
    train_from_files(
        str(train_path),
        str(val_path),
        params=params,
        tasks=(EDUCATIONAL,),
        seed=5,
        output_dir=tmp_path / "final",
        live_dir=tmp_path / "live",
    )
    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text())
    selection = metrics["selection"]
    values = {mode: c["value"] for mode, c in selection["candidates"].items()}
    assert selection["requested"] == "auto" and set(values) == {"frozen", "finetune"}
    assert selection["chosen"] == max(values, key=values.get)
    assert selection["candidates"]["frozen"]["path"] == "frozen_embeddings"
    assert selection["candidates"]["finetune"]["path"] == "trainer"
    assert metrics["best"]["value"] == values[selection["chosen"]]
    assert (tmp_path / "live" / "plots" / "metrics" / "eval" / "loss.tsv").exists()
    assert not list((tmp_path / "checkpoints").glob("live-*")), "candidate DVCLive folders are cleaned up"

    # The stored cut is the max-smoothed-F1 cut of the saved model's own validation scores.
    val = read_labeled(str(val_path), (EDUCATIONAL,))
    max_length = 64 if selection["chosen"] == "frozen" else 32
    scores = _scores(tmp_path / "final", val.texts, max_length)
    expected = calibrate_cut(scores, val.labels[:, 0].astype(np.float64), EDUCATIONAL.threshold)
    config = AnnotatorModel.config_class.from_pretrained(tmp_path / "final")
    assert config.calibrated_thresholds == [pytest.approx(expected.cut, abs=1e-4)]
    assert config.calibration_method == "max_smoothed_f1"
    assert metrics["calibration"]["educational"]["cut"] == pytest.approx(expected.cut, abs=1e-4)
    card = (tmp_path / "final" / "README.md").read_text()
    assert "## Calibrated thresholds" in card and f"kept `{selection['chosen']}`" in card
    assert (tmp_path / "live" / "calibration" / "educational.csv").read_text().startswith("bin,documents,mean_score")

    # Keep rule thresholds: calibrated keeps exactly the documents whose raw score reaches the cut.
    corpus = write_jsonl(
        tmp_path / "corpus" / "part-0.jsonl",
        [{"id": f"doc-{i}", "text": text, "language": "en"} for i, text in enumerate(val.texts)],
    )
    filter_params = FilterParams(
        inputs=(str(corpus),),
        model=str(tmp_path / "final"),
        scoring=ScoringParams(max_length=max_length, device="cpu", dtype="float32"),
        keep=KeepParams(rule="threshold", thresholds="calibrated"),
    )
    report = run_filter(filter_params, output=tmp_path / "out", attributes=tmp_path / "attrs", task_thresholds={})
    kept = [json.loads(line)["id"] for line in (tmp_path / "out" / "part-0.jsonl").read_text().splitlines()]
    assert kept == [f"doc-{i}" for i in np.flatnonzero(scores >= config.calibrated_thresholds[0])]
    assert report["documents"]["dropped"].get("below_calibrated_threshold", 0) == len(val.texts) - len(kept)


def test_a_fine_tuned_model_is_calibrated_on_its_own_validation_scores(tmp_path: Path, splits, tiny_params) -> None:
    train_path, val_path = splits(1)
    params = tiny_params(mode="finetune", finetune_num_epochs=1, finetune_max_length=32, finetune_batch_size=8)
    assert params.group_by_length  # length-grouped batches: the Trainer predicts val in another order
    train_from_files(
        str(train_path),
        str(val_path),
        params=params,
        tasks=(EDUCATIONAL,),
        seed=2,
        output_dir=tmp_path / "final",
        live_dir=tmp_path / "live",
    )
    val = read_labeled(str(val_path), (EDUCATIONAL,))
    scores = _scores(tmp_path / "final", val.texts, 32)
    labels = val.labels[:, 0].astype(np.float64)
    config = AnnotatorModel.config_class.from_pretrained(tmp_path / "final")
    assert config.calibrated_thresholds == [pytest.approx(calibrate_cut(scores, labels, 3).cut, abs=1e-4)]
    with open(tmp_path / "live" / "calibration" / "educational.csv", encoding="utf-8") as handle:
        written = [(float(r["mean_score"]), float(r["mean_label"])) for r in csv.DictReader(handle)]
    expected = [(r["mean_score"], r["mean_label"]) for r in reliability_table(scores, labels, 3)]
    np.testing.assert_allclose(np.array(written), np.array(expected), atol=1e-4)
