"""fastText classifier (kind ``fasttext``): fit on real FineWeb-Edu labels, predict, save and load by kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from mlfilter.classifiers.base import CONFIG_NAME, classifier_kind, load_classifier
from mlfilter.classifiers.fasttext_model import FastTextClassifier, FastTextConfig

SOURCE = Path(__file__).parents[1] / "training" / "data" / "fineweb_edu_sample.jsonl"


def records() -> list[dict]:
    return [json.loads(line) for line in SOURCE.read_text(encoding="utf-8").splitlines()]


def data() -> tuple[list[str], np.ndarray]:
    rows = records()
    texts = [r["text"] for r in rows]
    digits = [min(2, sum(c.isdigit() for c in t) // 10) for t in texts]
    labels = np.array(
        [[r["score"], d if i % 5 else np.nan] for i, (r, d) in enumerate(zip(rows, digits, strict=True))], float
    )
    return texts, labels


@pytest.mark.parametrize("objective", ["regression", "classification"])
def test_fits_predicts_in_range_and_round_trips(tmp_path: Path, objective: str) -> None:
    texts, labels = data()
    config = FastTextConfig(objective=objective, epoch=100, lr=1.0, min_count=1, bucket=20_000, dim=16)
    model = FastTextClassifier.fit(
        texts, labels, task_names=["educational", "digits"], num_targets=[6, 3], config=config
    )
    scores = model.predict(texts)
    assert scores.shape == (len(texts), 2)
    assert scores.dtype == np.float64
    assert np.all(scores[:, 0] >= 0) and np.all(scores[:, 0] <= 5)
    assert np.all(scores[:, 1] >= 0) and np.all(scores[:, 1] <= 2)
    # On its own training texts, the model must rank the labels (it has memorised them; no hard-coded value).
    assert spearmanr(scores[:, 0], labels[:, 0]).statistic > 0.5
    assert len({round(s, 6) for s in scores[:, 0]}) > 5, "scores must vary with the text"

    model.save_pretrained(tmp_path / "model")
    assert classifier_kind(tmp_path / "model") == "fasttext"
    loaded = load_classifier(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(texts), scores)
    assert loaded.task_names == ["educational", "digits"]
    saved = json.loads((tmp_path / "model" / CONFIG_NAME).read_text())
    expected_models = 5 + 2 if objective == "regression" else 2
    assert sum(len(files) for files in saved["files"]) == expected_models


def test_newlines_and_empty_texts_score(tmp_path: Path) -> None:
    texts, labels = data()
    model = FastTextClassifier.fit(
        texts, labels[:, :1], task_names=["educational"], num_targets=[6], config=FastTextConfig()
    )
    scores = model.predict(["", "line one\nline two\r\n\ttab", texts[0]])
    assert scores.shape == (3, 1) and np.all(np.isfinite(scores))
    assert model.predict([]).shape == (0, 1)


def test_single_label_task_is_a_clear_error() -> None:
    texts, _ = data()
    with pytest.raises(ValueError, match=r"task 'educational'.*at least two different labels"):
        FastTextClassifier.fit(texts, np.full((len(texts), 1), 3.0), task_names=["educational"], num_targets=[6])


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    texts, labels = data()
    model = FastTextClassifier.fit(
        texts, labels[:, :1], task_names=["educational"], num_targets=[6], config=FastTextConfig()
    )
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "task0-2.bin").unlink()
    with pytest.raises(ValueError, match=r"task0-2\.bin is missing"):
        load_classifier(tmp_path / "m")
