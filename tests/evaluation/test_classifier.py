"""The classifier on the test split: batch inference, the threshold sweep and the label-ceiling ratio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from mlfilter.errors import MlfilterError
from mlfilter.evaluation.classifier import (
    LabelledSplit,
    classifier_report,
    label_ceiling,
    load_split,
    predict_scores,
    task_columns,
    threshold_sweep,
)
from mlfilter.evaluation.gold import compare_scores
from mlfilter.evaluation.ratings import LabelSpace
from mlfilter.records import RecordFormatError
from tests.evaluation.conftest import EDU, TOXIC
from tests.evaluation.helpers import write_jsonl

TEXTS = [
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "Buy now!",
    "The French Revolution began in 1789 and reshaped politics across Europe for the following century "
    "as ideas of popular sovereignty spread through the continent and beyond.",
    "",
    "Die Zellteilung ist ein grundlegender Vorgang in der Biologie.",
]


def test_test_split_scores_match_one_text_at_a_time(model_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    from mlfilter.modeling import AnnotatorModel

    scores, tasks, labels = predict_scores(str(model_dir), TEXTS, max_length=64, device="cpu", dtype="float32")
    assert labels is None, "regression heads: the label is the rounded score"
    assert tasks == ["toxic", "educational"]
    assert scores.shape == (len(TEXTS), 2)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AnnotatorModel.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        single = [model(**tokenizer(t, truncation=True, max_length=64, return_tensors="pt")).scores[0] for t in TEXTS]
    np.testing.assert_allclose(scores, torch.stack(single).numpy(), atol=1e-5)
    assert len(np.unique(scores[:, 1].round(6))) == len(TEXTS)


def test_task_columns(model_dir: Path) -> None:
    assert task_columns(["toxic", "educational"], (EDU, TOXIC)) == [1, 0]
    with pytest.raises(MlfilterError, match="no head for task\\(s\\) educational; its heads: toxic"):
        task_columns(["toxic"], (EDU,))
    with pytest.raises(MlfilterError, match="model folder not found"):
        predict_scores(str(model_dir.parent / "missing"), TEXTS)


def test_threshold_sweep_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 300).astype(float)
    scores = np.clip(labels + rng.normal(0, 1, 300), 0, 5)
    rows = threshold_sweep(labels, scores, 3, 0.5, 5)
    assert [row["raw_cut"] for row in rows] == [0.5 * i for i in range(11)]
    for row in rows[1:-1]:
        predicted = scores >= row["raw_cut"]
        assert row["precision"] == pytest.approx(precision_score(labels >= 3, predicted))
        assert row["recall"] == pytest.approx(recall_score(labels >= 3, predicted))
        assert row["f1"] == pytest.approx(f1_score(labels >= 3, predicted))
        assert row["kept_fraction"] == pytest.approx(predicted.mean())
    assert rows[0]["recall"] == 1.0 and rows[0]["kept_fraction"] == 1.0


def test_threshold_sweep_by_hand() -> None:
    rows = threshold_sweep(np.array([0.0, 4.0]), np.array([1.0, 3.0]), 3, 1.0, 5)
    assert rows[1] == {
        "raw_cut": 1.0,
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "kept_fraction": 1.0,
    }
    assert rows[4] == {"raw_cut": 4.0, "precision": None, "recall": 0.0, "f1": 0.0, "kept_fraction": 0.0}


def test_sweep_row_at_threshold_minus_half_is_the_rounded_rule_of_f1_at_threshold() -> None:
    labels = np.array([2.5, 3.0, 2.0, 4.0, 1.0])  # a fractional label 2.5 is positive at 3 (rounded half up)
    scores = np.array([2.5, 2.7, 2.4, 3.6, 2.6])
    rows = threshold_sweep(labels, scores, 3, 0.5, 5)
    at_rounded_rule = next(row for row in rows if row["raw_cut"] == 2.5)
    binary = compare_scores(labels, scores, LabelSpace(6, 3))["binary"]["3"]
    assert binary["f1"] == at_rounded_rule["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1))
    assert binary["predicted_positives"] == 4 and binary["positives"] == 3


def test_label_ceiling_ratio() -> None:
    classifier = {"cohen_kappa_quadratic": 0.6, "spearman": 0.7}
    result = label_ceiling(classifier, {"cohen_kappa_quadratic": 0.8, "spearman": 0.5})
    assert result["cohen_kappa_quadratic"] == {
        "classifier_vs_labels": 0.6,
        "mean_annotator_pair": 0.8,
        "ratio": pytest.approx(0.75),
    }
    assert result["spearman"]["ratio"] == pytest.approx(1.4)
    missing = label_ceiling(classifier, None)
    assert missing["spearman"]["ratio"] is None and "fewer than two annotators" in missing["spearman"]["undefined"]
    chance = label_ceiling(classifier, {"cohen_kappa_quadratic": -0.1, "spearman": 0.0})
    assert chance["cohen_kappa_quadratic"]["ratio"] is None
    assert (
        chance["cohen_kappa_quadratic"]["undefined"]
        == "annotator agreement κ=-0.10 is below 0.2; the ratio is undefined"
    )
    assert chance["spearman"]["undefined"] == "annotator agreement ρ=0.00 is below 0.2; the ratio is undefined"


def test_label_ceiling_ratio_is_undefined_when_the_annotators_barely_agree() -> None:
    # The demo's case: annotators at κ = 0.09 made 0.3 / 0.09 = 3.3, a "ceiling" far above 1.
    result = label_ceiling(
        {"cohen_kappa_quadratic": 0.3, "spearman": 0.4}, {"cohen_kappa_quadratic": 0.09, "spearman": 0.2}
    )
    assert result["cohen_kappa_quadratic"]["ratio"] is None
    assert result["cohen_kappa_quadratic"]["mean_annotator_pair"] == 0.09, "numerator and denominator stay reported"
    assert result["cohen_kappa_quadratic"]["undefined"] == (
        "annotator agreement κ=0.09 is below 0.2; the ratio is undefined"
    )
    assert result["spearman"]["ratio"] == pytest.approx(2.0), "at the floor the ratio is defined"


def test_load_split_counts_missing_and_out_of_range_labels(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "test.jsonl",
        [
            {"id": "a", "text": "x", "language": "en", "scores": [3, 1]},
            {"id": "b", "text": "y", "language": "de", "scores": [None, 2]},
            {"id": "c", "text": "z", "scores": [9, 0]},
        ],
    )
    split = load_split(str(path), (EDU, TOXIC))
    assert split.ids == ["a", "b", "c"]
    np.testing.assert_array_equal(split.labels, [[3, 1], [np.nan, 2], [np.nan, 0]])
    assert list(split.languages) == ["en", "de", "unknown"]
    assert split.counts["educational"] == {"labelled": 1, "label_missing": 1, "label_out_of_range": 1}
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "text": "x", "scores": [1]}])
    with pytest.raises(RecordFormatError, match=r"bad\.jsonl:1: field 'scores' must hold one value per task"):
        load_split(str(bad), (EDU, TOXIC))


def test_classifier_report_per_task_and_language() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 6, 60).astype(float)
    split = LabelledSplit(
        ids=[str(i) for i in range(60)],
        texts=[""] * 60,
        languages=np.array(["en"] * 50 + ["de"] * 10, dtype=object),
        labels=labels[:, None],
        counts={"educational": {"labelled": 60}},
    )
    predictions = (labels + rng.normal(0, 0.8, 60) + 0.3)[:, None]
    report = classifier_report(
        split,
        predictions,
        (EDU,),
        annotator_agreement={"educational": {"cohen_kappa_quadratic": 0.5, "spearman": 0.6}},
        sweep_step=0.5,
        min_language_documents=20,
    )["educational"]
    clipped = np.clip(predictions[:, 0], 0, 5)
    assert report["mae"] == pytest.approx(np.mean(np.abs(clipped - labels)))
    ceiling = report["label_ceiling"]["cohen_kappa_quadratic"]
    assert ceiling["ratio"] == pytest.approx(report["cohen_kappa_quadratic"] / 0.5)
    assert report["per_language"]["de"] == {"documents": 10, "skipped": "fewer than 20 documents"}
    assert report["per_language"]["en"]["documents"] == 50
    assert len(report["threshold_sweep"]) == 11
