"""A classification head's label is its argmax in the engine, evaluate and filter; its score the expected value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlfilter.evaluation.classifier import LabelledSplit, classifier_report, predict_scores
from mlfilter.filtering.params import FilterParams, KeepParams, ScoringParams
from mlfilter.filtering.pipeline import run_filter
from mlfilter.params import TaskParams
from mlfilter.records import expand_inputs, iter_records
from mlfilter.training.params import TrainingParams
from mlfilter.training.run import load_base

EDU = TaskParams(name="educational", prompt="", num_targets=6, threshold=3)
#: Class probabilities of the hand-made head: the expected label is 0.45·0 + 0.55·4 = 2.2 (rounded: 2), the most
#: probable class is 4 — on opposite sides of the threshold 3.
PROBABILITIES = np.array([0.45, 1e-9, 1e-9, 1e-9, 0.55, 1e-9])
TEXTS = [
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "Buy now! Limited offer on shoes and bags.",
    "The French Revolution began in 1789 and reshaped politics across Europe for the following century.",
]


@pytest.fixture
def classification_model(tmp_path: Path) -> Path:
    """A saved classification model whose head ignores the text and outputs :data:`PROBABILITIES`."""
    model, tokenizer = load_base(TrainingParams(is_regression=False, mode="frozen"), (EDU,))
    layer = model.heads.tasks[0].layers
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.log(torch.tensor(PROBABILITIES, dtype=torch.float32)))
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


@pytest.mark.parametrize("long_documents", ["truncate", "chunk"])
def test_labels_are_the_argmax_while_scores_are_the_expected_value(
    classification_model: Path, long_documents: str
) -> None:
    texts = [*TEXTS, " ".join(TEXTS * 40)]  # the last one is several windows long when chunked
    scores, names, labels = predict_scores(
        str(classification_model), texts, max_length=160, long_documents=long_documents, device="cpu", dtype="float32"
    )
    assert names == ["educational"]
    np.testing.assert_allclose(scores[:, 0], 2.2, atol=1e-4)
    assert labels is not None and labels[:, 0].tolist() == [4.0] * len(texts)

    split = LabelledSplit(
        ids=[f"d{i}" for i in range(len(texts))],
        texts=texts,
        languages=np.array(["en"] * len(texts), dtype=object),
        labels=np.array([[4.0], [4.0], [2.0], [0.0]]),
        counts={"educational": {}},
        weights=np.ones(len(texts)),
    )
    report = classifier_report(
        split,
        scores,
        (EDU,),
        annotator_agreement={},
        sweep_step=0.5,
        min_language_documents=1,
        predicted_labels=labels,
    )["educational"]
    assert report["accuracy"] == pytest.approx(0.5)  # the two documents labelled 4; rounding 2.2 would hit only "2"
    assert report["confusion_matrix"]["counts"][4][4] == 2 and report["confusion_matrix"]["counts"][2][2] == 0
    assert report["binary"]["3"]["predicted_positives"] == 4 and report["binary"]["3"]["recall"] == 1.0
    assert report["mae"] == pytest.approx(np.mean(np.abs(2.2 - np.array([4, 4, 2, 0]))), abs=1e-4)
    assert report["per_language"]["en"]["accuracy"] == pytest.approx(0.5)
    assert report["population_estimate"]["accuracy"] == pytest.approx(0.5)

    rounded = classifier_report(
        split, scores, (EDU,), annotator_agreement={}, sweep_step=0.5, min_language_documents=1
    )["educational"]
    assert rounded["accuracy"] == pytest.approx(0.25) and rounded["binary"]["3"]["predicted_positives"] == 0


def test_the_filter_keeps_and_labels_by_the_argmax(classification_model: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus" / "part-0.jsonl"
    corpus.parent.mkdir()
    corpus.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": text, "language": "en"}) + "\n" for i, text in enumerate(TEXTS)),
        encoding="utf-8",
    )
    params = FilterParams(
        inputs=(str(corpus),),
        model=str(classification_model),
        scoring=ScoringParams(max_length=64, device="cpu", dtype="float32"),
        keep=KeepParams(rule="threshold", thresholds={"educational": 3}),
    )
    report = run_filter(params, output=tmp_path / "out", attributes=tmp_path / "attrs", task_thresholds={})
    kept = [json.loads(line) for line in (tmp_path / "out" / "part-0.jsonl").read_text().splitlines()]
    # Rounding the expected value 2.2 would keep none; the most probable class, 4, passes 3 for every document.
    assert [r["id"] for r in kept] == ["d0", "d1", "d2"] and report["documents"]["kept"] == 3
    assert all(r["educational_int_score"] == 4 and r["educational_score"] == pytest.approx(2.2, abs=1e-4) for r in kept)
    scores = [record for path in expand_inputs([str(tmp_path / "attrs")]) for _, record in iter_records(path)]
    assert [r["labels"] for r in scores] == [[4]] * 3
    raw = dataclasses.replace(params, keep=KeepParams(rule="raw_cut", thresholds={"educational": 2.5}))
    report = run_filter(raw, output=tmp_path / "out2", attributes=tmp_path / "attrs", task_thresholds={})
    assert report["documents"]["kept"] == 0, "the raw cut reads the expected value (2.2 < 2.5)"
