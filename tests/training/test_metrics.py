"""Validation metrics per task, against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from transformers import EvalPrediction

from mlfilter.training.metrics import (
    CONSTANT_RANKS,
    NO_LABELS,
    all_metrics,
    headline,
    nested_metrics,
    predicted_labels,
    trainer_metrics,
)
from tests.training.conftest import DIGITS, EDUCATIONAL


def test_regression_metrics_by_hand() -> None:
    labels = np.array([[0.0], [1.0], [3.0], [4.0], [math.nan]])
    scores = np.array([[0.4], [1.6], [2.6], [2.4], [5.0]])
    metrics = all_metrics(scores, scores, labels, (EDUCATIONAL,), is_regression=True)
    assert metrics["mae_educational"] == pytest.approx((0.4 + 0.6 + 0.4 + 1.6) / 4)
    assert metrics["mse_educational"] == pytest.approx((0.16 + 0.36 + 0.16 + 2.56) / 4)
    # predicted labels 0, 2, 3, 2 against 0, 1, 3, 4
    assert metrics["accuracy_educational"] == pytest.approx(0.5)
    # ranks of scores 1,2,4,3 against 1,2,3,4: rho = 1 - 6*2/(4*15)
    assert metrics["spearman_educational"] == pytest.approx(0.8)
    # positives (>= 3): truth F,F,T,T; predicted labels F,F,T,F → precision 1, recall 0.5
    assert metrics["binary_f1_educational"] == pytest.approx(2 / 3)
    # per class F1: 0 → 1, 1 → 0, 2 → 0, 3 → 1, 4 → 0 → mean 0.4
    assert metrics["macro_f1_educational"] == pytest.approx(0.4)
    assert metrics["spearman_mean"] == metrics["spearman_educational"]


def test_classification_uses_the_most_probable_class_and_tasks_average() -> None:
    labels = np.array([[5.0, 0.0], [0.0, 2.0], [2.0, math.nan]])
    logits = np.full((3, 9), -5.0)
    for row, (edu, digits) in enumerate([(5, 0), (1, 2), (2, 1)]):
        logits[row, edu] = 5.0
        logits[row, 6 + digits] = 5.0
    scores = np.array([[4.9, 0.1], [1.0, 1.9], [2.0, 1.0]])
    metrics = all_metrics(scores, logits, labels, (EDUCATIONAL, DIGITS), is_regression=False)
    assert metrics["accuracy_educational"] == pytest.approx(2 / 3)
    assert metrics["accuracy_digits"] == pytest.approx(1.0)
    assert metrics["accuracy_mean"] == pytest.approx(5 / 6)
    nested = nested_metrics(metrics, (EDUCATIONAL, DIGITS))
    assert set(nested) == {"educational", "digits", "mean"}
    assert nested["digits"]["accuracy"] == 1.0


def test_trainer_metrics_read_logits_and_scores() -> None:
    compute = trainer_metrics((EDUCATIONAL,), is_regression=True)
    scores = np.array([[0.0], [1.0], [4.0]])
    result = compute(EvalPrediction(predictions=(scores, scores), label_ids=np.array([[0.0], [1.0], [4.0]])))
    assert result["mae_educational"] == 0.0 and result["spearman_educational"] == pytest.approx(1.0)
    assert result["binary_f1_educational"] == 1.0


def test_a_task_without_labels_is_nan_flat_null_nested_and_never_logged() -> None:
    labels = np.array([[1.0, math.nan], [2.0, math.nan]])
    scores = np.array([[1.0, 1.0], [2.0, 1.0]])
    metrics = all_metrics(scores, scores, labels, (EDUCATIONAL, DIGITS), is_regression=True)
    assert math.isnan(metrics["mae_digits"])
    assert metrics["mae_mean"] == 0.0
    nested = nested_metrics(metrics, (EDUCATIONAL, DIGITS))
    assert nested["digits"]["mae"] is None and nested["digits"]["undefined"] == NO_LABELS
    assert "undefined" not in nested["educational"]
    json.dumps(nested, allow_nan=False)
    logged = trainer_metrics((EDUCATIONAL, DIGITS), is_regression=True)(
        EvalPrediction(predictions=(scores, scores), label_ids=labels)
    )
    assert "mae_educational" in logged and not any(name.endswith("_digits") for name in logged)


def test_labels_and_predictions_round_half_up_and_binary_f1_is_the_rounded_rule() -> None:
    # Half-to-even would make 2.5 → 2 and 0.5 → 0; the project's one rule makes them 3 and 1.
    labels = np.array([[2.5], [0.5], [3.0], [1.0]])
    scores = np.array([[2.5], [0.5], [2.6], [2.4]])
    metrics = all_metrics(scores, scores, labels, (EDUCATIONAL,), is_regression=True)
    # labels → 3, 1, 3, 1; predictions → 3, 1, 3, 2
    assert metrics["accuracy_educational"] == pytest.approx(3 / 4)
    # ≥ 3 by the rounded rule: truth T, F, T, F; predicted T, F, T, F (a raw cut at 3 would predict F, F, F, F)
    assert metrics["binary_f1_educational"] == 1.0


def test_classification_labels_come_from_argmax_not_the_expected_value() -> None:
    # A two-peaked head: P(0) = P(5) = 0.5. The expected value is 2.5 (label 3), the argmax label is 0.
    logits = np.full((1, 6), -30.0)
    logits[0, 0] = logits[0, 5] = 0.0
    assert predicted_labels(np.array([[2.5]]), logits, [6], is_regression=False).tolist() == [[0]]
    assert predicted_labels(np.array([[2.5]]), logits, [6], is_regression=True).tolist() == [[3]]


def test_spearman_of_constant_labels_is_null_with_a_reason_but_the_trainer_can_still_select() -> None:
    # Every validation document has label 2: no ranking to agree with, so ρ is undefined (it used to read 0.0).
    labels = np.array([[2.0], [2.0], [2.0]])
    scores = np.array([[1.5], [2.2], [2.9]])
    metrics = all_metrics(scores, scores, labels, (EDUCATIONAL,), is_regression=True)
    assert math.isnan(metrics["spearman_educational"]) and math.isnan(metrics["spearman_mean"])
    assert metrics["mae_educational"] == pytest.approx((0.5 + 0.2 + 0.9) / 3)
    nested = nested_metrics(metrics, (EDUCATIONAL,))
    assert nested["educational"]["spearman"] is None and nested["educational"]["undefined"] == CONSTANT_RANKS
    assert nested["educational"]["mae"] == pytest.approx(metrics["mae_educational"])
    json.dumps(nested, allow_nan=False)
    logged = trainer_metrics((EDUCATIONAL,), is_regression=True)(
        EvalPrediction(predictions=(scores, scores), label_ids=labels)
    )
    assert logged["spearman_educational"] == 0.0 and logged["spearman_mean"] == 0.0, "best-epoch choice needs a value"
    figures = headline({"val": nested, "selection": {"chosen": "frozen"}}, "frozen_embeddings", (EDUCATIONAL,))
    assert figures["val_spearman"] == {"educational": None}
    assert figures["val_mae"] == {"educational": pytest.approx(metrics["mae_educational"])}
    assert figures["mode"] == {"all": "frozen"}
    assert headline({"val": nested}, "fasttext", (EDUCATIONAL,))["mode"] == {"all": "fasttext"}


def test_constant_predictions_make_spearman_undefined_too() -> None:
    labels = np.array([[0.0], [3.0], [5.0]])
    scores = np.full((3, 1), 2.0)
    nested = nested_metrics(all_metrics(scores, scores, labels, (EDUCATIONAL,), is_regression=True), (EDUCATIONAL,))
    assert nested["educational"]["spearman"] is None and nested["educational"]["undefined"] == CONSTANT_RANKS
