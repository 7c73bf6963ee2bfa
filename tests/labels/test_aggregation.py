"""Known answers of every aggregation method, ties, rounding, weights, minimum counts; Dawid–Skene vs majority."""

from __future__ import annotations

import numpy as np
import pytest

from mlfilter.labels.aggregation import LABELLED, NO_LABEL, TIE, TOO_FEW, TaskLabels, aggregate_task, apply_rounding


def run(rows: list[tuple[int, int, float, float]], n_docs: int, method: str, **kwargs) -> TaskLabels:
    """Aggregate rows of (document, annotator, score, weight)."""
    doc, annotator, score, weight = (np.asarray(column) for column in zip(*rows, strict=True))
    return aggregate_task(doc, annotator, score.astype(float), weight.astype(float), n_docs, method=method, **kwargs)


# Document 0: scores 1, 2, 2, 4 — document 1: 0, 5 — document 2: 3 (one score).
ROWS = [(0, 0, 1, 1), (0, 1, 2, 1), (0, 2, 2, 1), (0, 3, 4, 1), (1, 0, 0, 1), (1, 1, 5, 1), (2, 0, 3, 1)]


@pytest.mark.parametrize(
    ("method", "raw", "rounded"),
    [
        ("mean", [2.25, 2.5, 3.0], [2, 3, 3]),
        ("median", [2.0, 2.5, 3.0], [2, 3, 3]),
        ("min", [1.0, 0.0, 3.0], [1, 0, 3]),
        ("max", [4.0, 5.0, 3.0], [4, 5, 3]),
        ("majority", [2.0, 0.0, 3.0], [2, 0, 3]),
    ],
)
def test_methods_known_answers(method: str, raw: list[float], rounded: list[int]) -> None:
    assert run(ROWS, 3, method, rounding="none").label.tolist() == raw
    assert run(ROWS, 3, method, rounding="round").label.tolist() == rounded


def test_rounding_policies_half_up() -> None:
    values = np.array([2.5, 2.4, 2.6, 0.5, np.nan, 3.0, 2.5 - 1e-12])
    assert apply_rounding(values, "round")[:4].tolist() == [3, 2, 3, 1]
    assert apply_rounding(values, "floor")[:4].tolist() == [2, 2, 2, 0]
    assert apply_rounding(values, "ceil")[:4].tolist() == [3, 3, 3, 1]
    assert np.isnan(apply_rounding(values, "round")[4])
    assert apply_rounding(values, "ceil")[5] == 3  # an exact integer is not pushed up
    assert apply_rounding(values, "round")[6] == 3  # float error just below a half still rounds up
    assert np.array_equal(apply_rounding(values, "none"), values, equal_nan=True)


@pytest.mark.parametrize(
    ("tie_break", "expected", "status"),
    [("lowest", 1.0, LABELLED), ("highest", 3.0, LABELLED), ("mean", 2.0, LABELLED), ("drop", None, TIE)],
)
def test_majority_tie_rules(tie_break: str, expected: float | None, status: int) -> None:
    rows = [(0, 0, 1, 1), (0, 1, 3, 1), (0, 2, 1, 1), (0, 3, 3, 1), (1, 0, 2, 1), (1, 1, 2, 1), (1, 2, 4, 1)]
    result = run(rows, 2, "majority", tie_break=tie_break, rounding="none")
    assert result.status.tolist() == [status, LABELLED]
    assert (None if np.isnan(result.label[0]) else result.label[0]) == expected
    assert result.label[1] == 2.0  # no tie: the plain winner


def test_majority_tie_mean_is_rounded_by_policy() -> None:
    rows = [(0, 0, 2, 1), (0, 1, 3, 1)]
    assert run(rows, 1, "majority", tie_break="mean", rounding="round").label.tolist() == [3.0]
    assert run(rows, 1, "majority", tie_break="mean", rounding="floor").label.tolist() == [2.0]


def test_majority_votes_over_rounded_float_scores() -> None:
    # Expected values from logprobs: 2.4 and 1.6 both round to class 2; 3.2 to 3.
    rows = [(0, 0, 2.4, 1), (0, 1, 1.6, 1), (0, 2, 3.2, 1)]
    assert run(rows, 1, "majority").label.tolist() == [2.0]


def test_weights_change_mean_median_and_majority() -> None:
    rows = [(0, 0, 1, 3.0), (0, 1, 4, 1.0), (0, 2, 5, 1.0)]
    assert run(rows, 1, "mean", rounding="none").label[0] == pytest.approx((3 * 1 + 4 + 5) / 5)
    assert run(rows, 1, "median", rounding="none").label.tolist() == [1.0]  # weight 3 of 5 at score 1
    assert run(rows, 1, "majority").label.tolist() == [1.0]
    assert run([(0, 0, 1, 1.0), (0, 1, 4, 1.0), (0, 2, 5, 1.0)], 1, "majority", tie_break="highest").label[0] == 5


def test_weighted_median_averages_at_exact_half() -> None:
    rows = [(0, 0, 1, 2.0), (0, 1, 3, 1.0), (0, 2, 5, 1.0)]
    assert run(rows, 1, "median", rounding="none").label.tolist() == [2.0]


def test_zero_weight_leaves_annotator_out_everywhere() -> None:
    rows = [(0, 0, 1, 1.0), (0, 1, 5, 0.0), (1, 1, 5, 0.0)]
    result = run(rows, 2, "max", rounding="none")
    assert result.label[0] == 1.0
    assert result.n.tolist() == [1, 0]
    assert result.status.tolist() == [LABELLED, NO_LABEL]


def test_min_valid_scores_and_missing_documents() -> None:
    result = run(ROWS, 4, "mean", min_valid_scores=2)
    assert result.status.tolist() == [LABELLED, LABELLED, TOO_FEW, NO_LABEL]
    assert np.isnan(result.label[2]) and np.isnan(result.label[3])
    assert result.n.tolist() == [4, 2, 1, 0]


def test_dispersion_and_agreement() -> None:
    result = run(ROWS, 3, "mean")
    assert result.std[0] == pytest.approx(np.std([1, 2, 2, 4]))
    assert result.range.tolist() == [3.0, 5.0, 0.0]
    assert result.agreement.tolist() == [0.5, 0.0, 1.0]  # labels 2, 3, 3
    assert result.annotators.tolist() == [4, 2, 1]
    assert result.confidence is None


def test_generations_of_one_annotator_pool() -> None:
    # Annotator 0 gave three generations, annotator 1 one: pooled, so the mean is (1+1+1+5)/4.
    rows = [(0, 0, 1, 1), (0, 0, 1, 1), (0, 0, 1, 1), (0, 1, 5, 1)]
    result = run(rows, 1, "mean", rounding="none")
    assert result.label[0] == 2.0
    assert result.n[0] == 4 and result.annotators[0] == 2


def simulate_raters(seed: int, accuracies: list[float], n_docs: int = 1000, n_classes: int = 6):
    """Raters of unequal accuracy around a planted truth; errors go to nearby classes (±1, ±2)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_docs)
    rows = []
    for rater, accuracy in enumerate(accuracies):
        correct = rng.random(n_docs) < accuracy
        offset = rng.choice([-2, -1, 1, 2], n_docs)
        wrong = np.clip(truth + offset, 0, n_classes - 1)
        wrong = np.where(wrong == truth, np.clip(truth - np.sign(offset), 0, n_classes - 1), wrong)
        given = np.where(correct, truth, wrong)
        rows += [(doc, rater, float(given[doc]), 1.0) for doc in range(n_docs)]
    return truth, rows


def test_dawid_skene_recovers_planted_truth_better_than_majority() -> None:
    # One good rater (90 %) among four poor ones (35 %): majority vote follows the poor raters when
    # two of them agree on a wrong class; Dawid–Skene learns who is reliable.
    truth, rows = simulate_raters(seed=11, accuracies=[0.9, 0.35, 0.35, 0.35, 0.35])
    ds = run(rows, len(truth), "dawid_skene")
    majority = run(rows, len(truth), "majority")
    ds_accuracy = float((ds.label == truth).mean())
    majority_accuracy = float((majority.label == truth).mean())
    assert ds_accuracy > 0.85
    assert ds_accuracy > majority_accuracy + 0.1
    assert ds.confidence is not None and np.all((ds.confidence > 0) & (ds.confidence <= 1))
    assert float(ds.confidence.mean()) > 0.8


def test_dawid_skene_respects_min_count_and_handles_no_scores() -> None:
    rows = [(0, 0, 2, 1), (0, 1, 2, 1), (1, 0, 4, 1)]
    result = run(rows, 3, "dawid_skene", min_valid_scores=2)
    assert result.label[0] == 2.0
    assert result.status.tolist() == [LABELLED, TOO_FEW, NO_LABEL]
    empty = aggregate_task(np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros(0), 2, method="dawid_skene")
    assert empty.status.tolist() == [NO_LABEL, NO_LABEL]
