"""Metrics against reference labels: hand-worked values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from mlfilter.errors import MlfilterError
from mlfilter.evaluation.gold import compare_scores, gold_column
from mlfilter.evaluation.ratings import LabelSpace, Ratings, RatingTable
from mlfilter.evaluation.report import reliability_report

nan = np.nan


def test_compare_scores_by_hand() -> None:
    reference = np.array([0, 0, 1, 1, 2, 2, nan], dtype=float)
    predicted = np.array([0.2, 0.6, 1.0, 1.4, 2.2, 0.4, 1.0])
    result = compare_scores(reference, predicted, LabelSpace(3, 1.5))
    assert result["documents"] == 6
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["mae"] == pytest.approx(0.5)
    assert result["confusion_matrix"]["counts"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert result["per_class"]["0"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert result["per_class"]["1"]["precision"] == pytest.approx(2 / 3)
    assert result["per_class"]["1"]["f1"] == pytest.approx(0.8)
    assert result["per_class"]["2"]["f1"] == pytest.approx(2 / 3)
    assert result["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # "≥ 1" by the rounded rule: predictions round to 0, 1, 1, 1, 2, 0 — 0.6 passes (a raw cut would refuse it)
    assert result["binary"]["1"] == {
        "precision": 0.75,
        "recall": 0.75,
        "f1": 0.75,
        "positives": 4,
        "predicted_positives": 4,
    }
    assert result["binary"]["2"]["recall"] == 0.5
    assert result["binary"]["1.5"] == result["binary"]["2"]


def test_compare_scores_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 6, 400).astype(float)
    predicted = np.clip(reference + rng.normal(0, 1.2, 400), 0, 5)
    result = compare_scores(reference, predicted, LabelSpace(6, 3))
    classes = np.clip(np.floor(predicted + 0.5), 0, 5)
    assert result["macro_f1"] == pytest.approx(f1_score(reference, classes, average="macro"))
    precision, recall, f1, support = precision_recall_fscore_support(reference, classes, labels=range(6))
    for label in range(6):
        per_class = result["per_class"][str(label)]
        assert (per_class["precision"], per_class["recall"], per_class["f1"]) == pytest.approx(
            (precision[label], recall[label], f1[label])
        )
        assert per_class["support"] == support[label]
    p, r, f, _ = precision_recall_fscore_support(reference >= 3, classes >= 3, average="binary")
    binary = result["binary"]["3"]
    assert (binary["precision"], binary["recall"], binary["f1"]) == pytest.approx((p, r, f))


def test_undefined_precision_is_null_not_zero() -> None:
    result = compare_scores(np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.0, 0.0]), LabelSpace(3, 1))
    assert result["per_class"]["1"]["precision"] is None
    assert result["per_class"]["1"]["recall"] == 0.0
    assert result["binary"]["1"]["precision"] is None
    assert result["spearman"] is None and "same score" in result["undefined"]["spearman"]
    empty = compare_scores(np.array([nan]), np.array([1.0]), LabelSpace(3, 1))
    assert empty == {"documents": 0, "undefined": {"all": "no document has both a reference and a predicted score"}}


def _table(raters: list[str], values: list[list[float]], docs: list[str] | None = None) -> RatingTable:
    docs = docs or [f"d{i}" for i in range(len(values))]
    return RatingTable(
        "educational", LabelSpace(6, 3), raters, docs, np.array(values, dtype=float), np.array(["en"] * len(docs))
    )


def test_gold_column_aligns_and_averages_several_gold_raters() -> None:
    gold = _table(["h1", "h2"], [[2, 4], [1, nan], [nan, nan]], ["b", "a", "z"])
    np.testing.assert_array_equal(gold_column(gold, ["a", "b", "c"]), [1.0, 3.0, nan])


def test_reliability_report_with_a_gold_rater_or_gold_file() -> None:
    table = _table(["human", "m1", "m2"], [[0, 0, 1], [1, 2, 1], [2, 2, 2], [3, 3, 4], [5, 4, 5]])
    ratings = Ratings(tables={"educational": table}, counts={})
    report = reliability_report(ratings, gold_rater="human")["educational"]
    assert report["agreement"]["raters"] == ["m1", "m2"]
    assert set(report["gold"]["raters"]) == {"m1", "m2"}
    expected = compare_scores(table.column("human"), table.column("m1"), table.space)
    assert report["gold"]["raters"]["m1"] == expected
    assert report["gold"]["raters"]["m1"]["accuracy"] == pytest.approx(3 / 5)

    gold = Ratings(tables={"educational": _table(["gold"], [[2], [0]], ["d2", "d0"])}, counts={})
    with_file = reliability_report(ratings, gold=gold)["educational"]
    assert with_file["gold"]["documents"] == 2
    assert with_file["gold"]["raters"]["m2"]["accuracy"] == pytest.approx(0.5)
    assert with_file["agreement"]["raters"] == ["human", "m1", "m2"]

    with pytest.raises(MlfilterError, match="gold annotator 'nobody' has no scores"):
        reliability_report(ratings, gold_rater="nobody")
    alone = Ratings(tables={"educational": table.select(["human", "m1"])}, counts={})
    lenient = reliability_report(alone, gold_rater="human", strict=False)["educational"]
    assert lenient["agreement"] is None and "at least 2 raters" in lenient["undefined"]["agreement"]
    assert lenient["gold"]["raters"]["m1"]["documents"] == 5
