"""The model card's baseline comparison and per-language quality, measured on the validation split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from mlfilter.classifiers.tfidf import TfidfClassifier
from mlfilter.training.data import LabeledData
from mlfilter.training.model_card import quality_lines
from mlfilter.training.val_quality import MIN_LANGUAGE_DOCUMENTS, validation_quality
from tests.training.conftest import EDUCATIONAL, sample_records


def _data(records: list[dict], languages: list[str | None]) -> LabeledData:
    return LabeledData(
        texts=[r["text"] for r in records],
        labels=np.array([[float(r["scores"][0])] for r in records], dtype=np.float32),
        ids=[r["id"] for r in records],
        files=["mem"],
        languages=languages,
    )


def test_a_model_worse_than_the_baseline_gets_a_warning_and_per_language_rows() -> None:
    records = sample_records()
    train = _data(records[:15], ["en"] * 15)
    languages = ["en"] * MIN_LANGUAGE_DOCUMENTS + ["de"] * (25 - MIN_LANGUAGE_DOCUMENTS)
    val = _data(records[15:], languages)
    labels = val.labels[:, 0].astype(np.float64)
    baseline = TfidfClassifier.fit(train.texts, train.labels, task_names=["educational"], num_targets=[6])
    base = baseline.predict(val.texts)[:, 0]
    expected_base = spearmanr(base, labels).statistic

    perfect = validation_quality(train, val, labels[:, None].copy(), (EDUCATIONAL,), seed=0)
    entry = perfect["tasks"]["educational"]
    assert entry["model"]["spearman"] == pytest.approx(1.0) and entry["model"]["mae"] == 0.0
    assert entry["baseline"]["spearman"] == pytest.approx(expected_base)
    assert entry["margin"]["spearman"] == pytest.approx(1.0 - expected_base) and entry["margin"]["beats_baseline"]
    assert perfect["warnings"] == [] and perfect["split"] == "val"

    reversed_scores = (5.0 - labels)[:, None]
    worse = validation_quality(train, val, reversed_scores, (EDUCATIONAL,), seed=0)
    assert worse["tasks"]["educational"]["margin"]["beats_baseline"] is False
    assert len(worse["warnings"]) == 1 and "on the validation split" in worse["warnings"][0]
    english = worse["per_language"]["en"]["educational"]
    first = slice(0, MIN_LANGUAGE_DOCUMENTS)
    assert english["model"]["documents"] == MIN_LANGUAGE_DOCUMENTS
    assert english["model"]["spearman"] == pytest.approx(spearmanr(5.0 - labels[first], labels[first]).statistic)
    assert english["baseline"]["spearman"] == pytest.approx(spearmanr(base[first], labels[first]).statistic)
    assert worse["per_language"]["de"]["educational"] == {
        "documents": 25 - MIN_LANGUAGE_DOCUMENTS,
        "skipped": f"fewer than {MIN_LANGUAGE_DOCUMENTS} documents",
    }
    json.dumps(worse, allow_nan=False)  # strict JSON for metrics.json
    card = "\n".join(quality_lines(worse))
    assert "**Warning:** educational: the model does not beat" in card
    assert "| en | educational | 20 |" in card and "| de | educational | 5 | fewer than 20 documents" in card
