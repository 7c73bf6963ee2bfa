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
    # Labels >= 3 start at score 2.2: the cut lies between 2.0 and 2.2, far below the rounded rule's 2.5.
    labels = np.array([0, 1, 1, 1, 2, 2, 3, 3, 4, 3], dtype=np.float64)
    low = calibrate_cut(SCORES, labels, threshold=3)
    assert low.cut == pytest.approx(2.1) and low.f1 == 1.0 and low.positives == 4 and low.documents == 10
    # The same scores, but now only documents from 2.6 up are positive: the cut follows them.
    labels = np.array([0, 1, 1, 1, 2, 2, 2, 2, 4, 3], dtype=np.float64)
    high = calibrate_cut(SCORES, labels, threshold=3)
    assert high.cut == pytest.approx(2.45) and high.f1 == 1.0 and high.positives == 2
    # A label of 2.5 counts as 3 (rounded half up), as everywhere else.
    labels[7] = 2.5
    assert calibrate_cut(SCORES, labels, threshold=3).cut == pytest.approx(2.25)


def test_max_f1_cut_matches_a_brute_force_search_on_noisy_data() -> None:
    rng = np.random.default_rng(7)
    labels = rng.choice([0, 1, 2, 3, 4], size=300, p=[0.15, 0.5, 0.2, 0.1, 0.05]).astype(np.float64)
    scores = 0.5 * labels + rng.normal(1.0, 0.6, size=300)
    scores[::7] = np.round(scores[::7], 1)  # ties
    result = calibrate_cut(scores, labels, threshold=3)
    truth = labels >= 3
    assert result.f1 == pytest.approx(_brute_force_f1(scores, truth))
    assert f1_score(truth, scores >= result.cut) == pytest.approx(result.f1)
    assert result.method == "max_f1" and result.target_reached


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
