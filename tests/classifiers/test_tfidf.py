"""The character n-gram TF-IDF classifier: learning on real text, weights, saving without pickle, loading by kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from mlfilter.classifiers.base import CONFIG_NAME, classifier_kind, load_classifier
from mlfilter.classifiers.tfidf import WEIGHTS_NAME, TfidfClassifier, TfidfConfig

TRAINING_DATA = Path(__file__).parents[1] / "training" / "data" / "fineweb_edu_sample.jsonl"
SAMPLING_DATA = Path(__file__).parents[1] / "sampling" / "data"
SMALL = TfidfConfig(ngram_min=2, ngram_max=4, min_df=1, alpha=0.5)


def educational() -> tuple[list[str], np.ndarray]:
    """40 real FineWeb-Edu documents and their Llama-3-70B educational scores (0-5)."""
    rows = [json.loads(line) for line in TRAINING_DATA.read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows], np.array([[float(r["score"])] for r in rows])


def languages() -> tuple[list[str], np.ndarray]:
    """Real English (label 0), German (1) and Serbian Cyrillic (2) web documents, 12 of each, interleaved."""
    files = ("fineweb-edu-en.jsonl", "fineweb2-deu_Latn.jsonl", "fineweb2-srp_Cyrl.jsonl")
    per_language = [
        [json.loads(line)["text"] for line in (SAMPLING_DATA / name).read_text(encoding="utf-8").splitlines()]
        for name in files
    ]
    texts, labels = [], []
    for index in range(12):
        for label, docs in enumerate(per_language):
            texts.append(docs[index])
            labels.append([float(label)])
    return texts, np.array(labels)


@pytest.mark.parametrize("objective", ["regression", "classification"])
def test_learns_the_language_of_held_out_documents(objective: str) -> None:
    texts, labels = languages()
    config = TfidfConfig(ngram_min=1, ngram_max=3, min_df=1, alpha=0.1, objective=objective)  # type: ignore[arg-type]
    model = TfidfClassifier.fit(texts[:24], labels[:24], task_names=["language"], num_targets=[3], config=config)
    scores = model.predict(texts[24:])
    assert scores.shape == (12, 1)
    assert np.all((scores >= 0) & (scores <= 2))
    assert (np.rint(scores[:, 0]) == labels[24:, 0]).mean() >= 11 / 12


def test_ranks_real_educational_scores_and_saves_without_pickle(tmp_path: Path) -> None:
    texts, labels = educational()
    model = TfidfClassifier.fit(texts, labels, task_names=["educational"], num_targets=[6], config=SMALL)
    scores = model.predict(texts)
    assert spearmanr(scores[:, 0], labels[:, 0]).statistic > 0.8
    model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / CONFIG_NAME).read_text(encoding="utf-8"))
    assert config["kind"] == "tfidf" and config["task_names"] == ["educational"] and config["num_targets"] == [6]
    np.load(tmp_path / "model" / WEIGHTS_NAME, allow_pickle=False).close()
    assert classifier_kind(tmp_path / "model") == "tfidf"
    loaded = load_classifier(tmp_path / "model")
    assert isinstance(loaded, TfidfClassifier)
    np.testing.assert_allclose(loaded.predict(texts), scores, rtol=1e-6, atol=1e-6)


def test_classification_round_trip_keeps_expected_labels(tmp_path: Path) -> None:
    texts, labels = educational()
    config = TfidfConfig(ngram_min=2, ngram_max=3, min_df=1, objective="classification")
    model = TfidfClassifier.fit(texts, labels, task_names=["educational"], num_targets=[6], config=config)
    model.save_pretrained(tmp_path / "model")
    np.testing.assert_allclose(TfidfClassifier.from_pretrained(tmp_path / "model").predict(texts), model.predict(texts))


def test_missing_labels_are_left_out_per_task() -> None:
    texts, labels = educational()
    second = np.where(np.arange(len(texts)) % 2 == 0, np.nan, labels[:, 0] >= 2).astype(np.float64)
    both = np.column_stack([labels[:, 0], second])
    model = TfidfClassifier.fit(texts, both, task_names=["educational", "high"], num_targets=[6, 2], config=SMALL)
    scores = model.predict(texts)
    assert scores.shape == (40, 2)
    assert np.all((scores[:, 1] >= 0) & (scores[:, 1] <= 1))
    with pytest.raises(ValueError, match="'high': 0 labelled"):
        TfidfClassifier.fit(
            texts,
            np.column_stack([labels[:, 0], np.full(40, np.nan)]),
            task_names=["educational", "high"],
            num_targets=[6, 2],
            config=SMALL,
        )


def test_weights_pull_the_fit_toward_heavy_documents() -> None:
    texts, labels = educational()
    plain = TfidfClassifier.fit(texts, labels, task_names=["educational"], num_targets=[6], config=SMALL)
    heavy_high = np.where(labels[:, 0] >= 3, 20.0, 1.0)
    weighted = TfidfClassifier.fit(
        texts, labels, task_names=["educational"], num_targets=[6], weights=heavy_high, config=SMALL
    )
    low = labels[:, 0] <= 1
    assert weighted.predict(texts)[low].mean() > plain.predict(texts)[low].mean() + 0.05


@pytest.mark.parametrize(
    ("weights", "message"),
    [(np.zeros(40), "positive"), (np.ones(39), "expected 40"), (-np.ones(40), "positive")],
)
def test_bad_weights_are_named(weights: np.ndarray, message: str) -> None:
    texts, labels = educational()
    with pytest.raises(ValueError, match=f"weights: .*{message}"):
        TfidfClassifier.fit(texts, labels, task_names=["educational"], num_targets=[6], weights=weights, config=SMALL)


def test_bad_config_is_named() -> None:
    with pytest.raises(ValueError, match="ngram_min"):
        TfidfConfig(ngram_min=3, ngram_max=2)
    with pytest.raises(ValueError, match="objective"):
        TfidfConfig(objective="ordinal")  # type: ignore[arg-type]


def test_texts_are_read_up_to_max_chars() -> None:
    texts, labels = educational()
    config = TfidfConfig(ngram_min=2, ngram_max=3, min_df=1, max_chars=300)
    model = TfidfClassifier.fit(texts, labels, task_names=["educational"], num_targets=[6], config=config)
    tails = [text[:300] + " completely different ending about quantum chromodynamics" for text in texts]
    np.testing.assert_allclose(model.predict(tails), model.predict(texts))
    whole = TfidfClassifier.fit(
        texts,
        labels,
        task_names=["educational"],
        num_targets=[6],
        config=TfidfConfig(ngram_min=2, ngram_max=3, min_df=1),
    )
    assert not np.allclose(whole.predict(tails), whole.predict(texts))
