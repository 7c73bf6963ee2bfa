"""A proxy-stratified sample with inverse-probability weights estimates population metrics; without weights it is
biased. The population is synthetic, so its true metric values are known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlfilter.evaluation.classifier import classifier_report, load_split
from mlfilter.evaluation.gold import compare_scores
from mlfilter.evaluation.ratings import LabelSpace
from mlfilter.evaluation.report import headline_metrics
from mlfilter.evaluation.weighted import population_metrics
from mlfilter.params import TaskParams
from mlfilter.records import RecordFormatError
from mlfilter.sampling.proxy import proxy_stratified_sample
from tests.evaluation.helpers import write_jsonl

SPACE = LabelSpace(6, 3)
#: Label shares of the FineWeb-Edu Llama-3-70B annotations (0 … 5): most pages low, few at 3 or above.
SHARES = [0.14, 0.57, 0.21, 0.065, 0.015, 0.0]
METRICS = ("mae", "spearman", "macro_f1", "f1_at_3", "positive_share_at_3")
#: Metrics the over-sampling moves: macro-F1 averages per-class F1 scores, which the design shifts little here.
BIASED = ("mae", "spearman", "f1_at_3", "positive_share_at_3")


def population(size: int = 20_000) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Ids, labels, a classifier's scores (noisier on high labels, as with few training positives) and a cheap
    proxy's scores (the labels plus more noise)."""
    rng = np.random.default_rng(2024)
    labels = rng.choice(6, size=size, p=SHARES).astype(np.float64)
    scores = np.clip(labels + rng.normal(0, 0.45 + 0.25 * labels), 0, 5)
    proxy = labels + rng.normal(0, 0.8, size)
    return [f"doc-{i}" for i in range(size)], labels, scores, proxy


def summary(result: dict) -> dict[str, float]:
    binary = result["binary"]["3"]
    return {
        "mae": result["mae"],
        "spearman": result["spearman"],
        "macro_f1": result["macro_f1"],
        "f1_at_3": binary["f1"],
        "positive_share_at_3": binary["positive_share"],
    }


def test_weighted_metrics_of_a_proxy_stratified_sample_estimate_the_population() -> None:
    ids, labels, scores, proxy = population()
    truth = summary(population_metrics(labels, scores, np.ones(len(ids)), SPACE))
    assert truth["positive_share_at_3"] == pytest.approx(0.08, abs=0.01)

    weighted: dict[str, list[float]] = {name: [] for name in METRICS}
    unweighted: dict[str, list[float]] = {name: [] for name in METRICS}
    for seed in range(40):
        drawn = proxy_stratified_sample(ids, proxy, edges=[1.5, 2.5, 3.5], sample_size=600, seed=seed)
        rows = drawn.selected
        assert rows.sum() == 600
        weights = 1.0 / drawn.inclusion_probability[rows]
        for name, value in summary(population_metrics(labels[rows], scores[rows], weights, SPACE)).items():
            weighted[name].append(value)
        for name, value in summary(population_metrics(labels[rows], scores[rows], np.ones(600), SPACE)).items():
            unweighted[name].append(value)
    # The proxy over-samples the rare high labels: a uniform sample of 600 would hold about 48 at 3 or above.
    assert np.mean(unweighted["positive_share_at_3"]) > 0.3

    for name in METRICS:
        w, u = np.array(weighted[name]), np.array(unweighted[name])
        standard_error = w.std(ddof=1) / np.sqrt(len(w))
        # Weighted: the mean of 40 independent samples lies within sampling error of the population value, and
        # so does (almost) every single sample.
        assert abs(w.mean() - truth[name]) < 3 * standard_error + 0.005, (name, w.mean(), truth[name])
        assert np.mean(np.abs(w - truth[name]) < 3 * w.std(ddof=1)) >= 0.95, name
        if name in BIASED:  # Unweighted: biased, far outside the sampling error.
            assert abs(u.mean() - truth[name]) > 10 * u.std(ddof=1) / np.sqrt(len(u)), (name, u.mean(), truth[name])
            assert abs(u.mean() - truth[name]) > 0.05, (name, u.mean(), truth[name])


def test_unit_weights_give_the_unweighted_metrics() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 6, 300).astype(np.float64)
    labels[::17] = np.nan
    scores = np.clip(labels + rng.normal(0, 1, 300), 0, 5)
    plain = compare_scores(labels, scores, SPACE)
    weighted = population_metrics(labels, scores, np.ones(300), SPACE)
    for name in ("mae", "spearman", "accuracy", "macro_f1", "cohen_kappa_quadratic", "documents"):
        assert weighted[name] == pytest.approx(plain[name]), name
    assert weighted["effective_documents"] == pytest.approx(weighted["documents"])


def test_integer_weights_equal_repeating_documents() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 6, 120).astype(np.float64)
    scores = np.clip(labels + rng.normal(0, 1, 120), 0, 5)
    weights = rng.integers(1, 4, 120).astype(np.float64)
    repeated = np.repeat(np.arange(120), weights.astype(int))
    by_weight = population_metrics(labels, scores, weights, SPACE)
    by_copy = population_metrics(labels[repeated], scores[repeated], np.ones(len(repeated)), SPACE)
    for name in ("mae", "spearman", "accuracy", "macro_f1", "cohen_kappa_quadratic"):
        assert by_weight[name] == pytest.approx(by_copy[name]), name
    for key, block in by_weight["binary"].items():
        assert block == pytest.approx(by_copy["binary"][key]), key


def test_split_weights_give_a_population_estimate_beside_the_sample_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 6, 60)
    weights = rng.uniform(1, 10, 60)
    records = [
        {"id": f"d{i}", "text": f"text {i}", "language": "en", "scores": [int(labels[i])], "weight": float(weights[i])}
        for i in range(60)
    ]
    write_jsonl(tmp_path / "test.jsonl", records)
    task = TaskParams(name="educational", prompt="p.yaml", num_targets=6, threshold=3)
    split = load_split(str(tmp_path / "test.jsonl"), [task])
    np.testing.assert_allclose(split.weights, weights)
    scores = np.clip(labels + rng.normal(0, 1, 60), 0, 5)[:, None]
    report = classifier_report(split, scores, [task], annotator_agreement={}, sweep_step=0.5, min_language_documents=5)
    estimate = report["educational"]["population_estimate"]
    assert estimate == population_metrics(labels.astype(float), scores[:, 0], weights, SPACE)
    headline = headline_metrics({}, report, {})["classifier"]["educational"]["population_estimate"]
    assert headline["f1_at_threshold"] == estimate["binary"]["3"]["f1"]
    assert headline["mae"] == estimate["mae"] != report["educational"]["mae"]

    records[7]["weight"] = -2
    write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(RecordFormatError, match=r"bad\.jsonl:8: field 'weight': expected a number > 0"):
        load_split(str(tmp_path / "bad.jsonl"), [task])


def test_without_weights_there_is_no_population_estimate(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "test.jsonl", [{"id": "a", "text": "x", "scores": [1]}, {"id": "b", "text": "y", "scores": [2]}]
    )
    task = TaskParams(name="educational", prompt="p.yaml", num_targets=6, threshold=3)
    split = load_split(str(tmp_path / "test.jsonl"), [task])
    assert split.weights is None
    report = classifier_report(
        split, np.array([[1.0], [2.0]]), [task], annotator_agreement={}, sweep_step=0.5, min_language_documents=5
    )
    assert "population_estimate" not in report["educational"]
