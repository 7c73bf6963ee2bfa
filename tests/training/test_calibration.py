"""Calibrated cuts follow the validation data; reliability tables summarise it bin by bin."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score

from mlfilter.training.calibration import calibrate_cut, reliability_table, write_reliability_csv

SCORES = np.array([0.4, 0.9, 1.3, 1.6, 1.9, 2.0, 2.2, 2.3, 2.6, 3.1])


def _brute_force_f1(scores: np.ndarray, truth: np.ndarray) -> float:
    return max(f1_score(truth, scores >= c, zero_division=0) for c in np.unique(scores))


def test_the_cut_moves_to_where_the_validation_labels_turn_positive() -> None:
    # 60 documents scored 0.0, 0.1, …, 5.9; labels turn >= 3 at score 3.0. The smoothed F1 keeps one more document
    # below the step (missing a positive costs F1 more than keeping a negative): the cut lies between 2.8 and 2.9.
    scores = np.round(np.arange(0, 6, 0.1), 1)
    labels = np.where(scores >= 3.0, 3.0, 1.0)
    low = calibrate_cut(scores, labels, threshold=3)
    assert low.cut == pytest.approx(2.85) and low.recall == 1.0 and low.positives == 30 and low.documents == 60
    # The same scores, but labels turn >= 3 only at 4.0: the cut follows them, by the same 1.0.
    high = calibrate_cut(scores, np.where(scores >= 4.0, 3.0, 1.0), threshold=3)
    assert high.cut == pytest.approx(3.85) and high.recall == 1.0 and high.positives == 20
    # A label of 2.5 counts as 3 (rounded half up), as everywhere else: one more positive, one step lower.
    labels[scores == 2.9] = 2.5
    assert calibrate_cut(scores, labels, threshold=3).cut == pytest.approx(2.75)
    # Constant scores leave nothing to smooth over (bandwidth 0): the plain F1 decides, keeping all.
    constant = calibrate_cut(np.ones(4), np.array([0.0, 0.0, 4.0, 4.0]), threshold=3)
    assert constant.cut == pytest.approx(0.5) and constant.f1 == pytest.approx(2 / 3) and constant.recall == 1.0


def test_max_smoothed_f1_cut_reports_its_own_plain_figures_near_the_brute_force_best() -> None:
    rng = np.random.default_rng(7)
    labels = rng.choice([0, 1, 2, 3, 4], size=300, p=[0.15, 0.5, 0.2, 0.1, 0.05]).astype(np.float64)
    scores = 0.5 * labels + rng.normal(1.0, 0.6, size=300)
    scores[::7] = np.round(scores[::7], 1)  # ties
    result = calibrate_cut(scores, labels, threshold=3)
    truth = labels >= 3
    assert f1_score(truth, scores >= result.cut) == pytest.approx(result.f1)
    assert precision_score(truth, scores >= result.cut) == pytest.approx(result.precision)
    best = _brute_force_f1(scores, truth)
    assert best - 0.06 <= result.f1 <= best
    assert result.method == "max_smoothed_f1" and result.target_reached


def test_smoothed_cuts_separate_the_population_better_than_the_raw_f1_maximum() -> None:
    # Many validation samples of one population: the cut chosen on each is scored on a large fresh sample. The
    # smoothed maximum, on average, keeps the population closer to its best F1 than the jagged raw maximum does.
    rng = np.random.default_rng(0)

    def draw(size: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.choice([0, 1, 2, 3, 4], size=size, p=[0.15, 0.5, 0.2, 0.1, 0.05]).astype(np.float64)
        return 0.5 * labels + rng.normal(1.0, 0.6, size=size), labels

    population_scores, population_labels = draw(100_000)
    truth = population_labels >= 3

    def population_f1(cut: float) -> float:
        kept = population_scores >= cut
        return 2 * (kept & truth).sum() / (kept.sum() + truth.sum())

    gains = []
    for _ in range(150):
        scores, labels = draw(150)
        cuts = np.unique(scores)
        kept = scores[None, :] >= cuts[:, None]
        raw_cut = cuts[np.argmax(2 * (kept & (labels >= 3)).sum(1) / (kept.sum(1) + (labels >= 3).sum()))]
        smoothed_cut = calibrate_cut(scores, labels, threshold=3).cut
        gains.append(population_f1(smoothed_cut) - population_f1(raw_cut))
    gains = np.array(gains)
    assert gains.mean() > 3 * gains.std(ddof=1) / np.sqrt(len(gains)) > 0


def test_target_precision_takes_the_lowest_cut_that_reaches_it() -> None:
    rng = np.random.default_rng(3)
    labels = rng.choice([0, 1, 2, 3, 4], size=400).astype(np.float64)
    scores = labels + rng.normal(0, 1.0, size=400)
    truth = labels >= 3
    result = calibrate_cut(scores, labels, threshold=3, target_precision=0.9)
    assert result.method == "precision>=0.9" and result.target_reached
    assert precision_score(truth, scores >= result.cut) == pytest.approx(result.precision) and result.precision >= 0.9
    lower = [c for c in np.unique(scores) if c < result.cut]
    assert all(precision_score(truth, scores >= c) < 0.9 for c in lower)
    assert result.cut > calibrate_cut(scores, labels, threshold=3).cut
    unreachable = calibrate_cut(np.zeros(4) + np.arange(4), np.array([3.0, 0.0, 3.0, 0.0]), 3, target_precision=1.0)
    assert not unreachable.target_reached and unreachable.cut is not None


def test_no_cut_without_documents_on_both_sides_and_missing_labels_are_left_out() -> None:
    labels = np.array([0, 1, 2, np.nan, 1, 0, 2, 1, 0, np.nan])
    result = calibrate_cut(SCORES, labels, threshold=3)
    assert result.cut is None and result.positives == 0 and result.documents == 8
    labels[9] = 4.0
    assert calibrate_cut(SCORES, labels, threshold=3).cut == pytest.approx((3.1 + 2.6) / 2)


def test_reliability_table_bins_by_score_and_shows_compression(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 2, 3, 4], size=200).astype(np.float64)
    compressed = labels.mean() + 0.4 * (labels - labels.mean())  # a head pulled toward the mean
    rows = reliability_table(compressed, labels, threshold=3, bins=5)
    assert sum(r["documents"] for r in rows) == 200 and len(rows) == 5
    assert [r["mean_score"] for r in rows] == sorted(r["mean_score"] for r in rows)
    span_scores = rows[-1]["mean_score"] - rows[0]["mean_score"]
    span_labels = rows[-1]["mean_label"] - rows[0]["mean_label"]
    assert span_scores == pytest.approx(0.4 * span_labels, rel=1e-6)
    assert rows[-1]["positive_rate"] == 1.0 and rows[0]["positive_rate"] == 0.0
    write_reliability_csv(tmp_path / "plots" / "educational.csv", rows)
    with open(tmp_path / "plots" / "educational.csv", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert [int(r["documents"]) for r in read] == [r["documents"] for r in rows]
