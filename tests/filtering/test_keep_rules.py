"""Keep rules keep exactly what they should: thresholds, quantiles and token budgets, per language."""

from __future__ import annotations

import numpy as np
import pytest

from mlfilter.errors import MlfilterError
from mlfilter.filtering.keep_rules import (
    KeepDecision,
    language_codes,
    rank_task_index,
    resolve_thresholds,
    select_best,
    threshold_mask,
)
from mlfilter.filtering.params import KeepParams

SCORES = np.asarray([[3.0, 0.5], [2.999, 2.0], [4.5, 0.0], [1.0, 1.9], [3.2, 1.5]])


def test_raw_cuts_are_inclusive_and_combine_with_all_or_any() -> None:
    assert threshold_mask(SCORES, [3.0, None], "all", raw=True).tolist() == [True, False, True, False, True]
    assert threshold_mask(SCORES, [3.0, 1.5], "all", raw=True).tolist() == [False, False, False, False, True]
    assert threshold_mask(SCORES, [3.0, 1.5], "any", raw=True).tolist() == [True, True, True, True, True]
    assert threshold_mask(SCORES, [4.0, 1.95], "any", raw=True).tolist() == [False, True, True, False, False]


def test_thresholds_round_half_up_first_like_fineweb_edu_int_score() -> None:
    # Rounded: task 0 → 3, 3, 5, 1, 3; task 1 → 1, 2, 0, 2, 2 (0.5 → 1, 1.5 → 2: halves go up).
    assert threshold_mask(SCORES, [3.0, None], "all").tolist() == [True, True, True, False, True]
    assert threshold_mask(SCORES, [3.0, 1.5], "all").tolist() == [False, True, False, False, True]
    assert threshold_mask(SCORES, [4.0, 1.95], "any").tolist() == [False, True, True, True, True]
    assert threshold_mask(np.asarray([[2.5], [2.4999], [np.nan]]), [3.0], "all").tolist() == [True, False, False]
    assert KeepDecision("raw_cut", (3.0,)).drop_reason == "below_raw_cut"


def test_documents_without_a_score_are_never_ranked_nor_counted() -> None:
    scores = np.asarray([np.nan, 1.0, 3.0, np.nan, 2.0])
    keep = select_best(scores, np.ones(5), np.zeros(5, dtype=np.int64), rule="quantile", fraction=1.0)
    assert keep.tolist() == [False, True, True, False, True]
    half = select_best(scores, np.ones(5), np.zeros(5, dtype=np.int64), rule="quantile", fraction=0.5)
    assert half.tolist() == [False, False, True, False, False]  # floor(0.5 × 3 scored) = 1


def test_thresholds_default_to_the_tasks_and_name_unknown_tasks() -> None:
    tasks = ["educational", "style"]
    assert resolve_thresholds(KeepParams(), tasks, {"educational": 3, "style": 1}) == {"educational": 3, "style": 1}
    assert resolve_thresholds(KeepParams(thresholds={"style": 2.5}), tasks, {}) == {"style": 2.5}
    with pytest.raises(MlfilterError, match=r"filter\.keep\.thresholds\.toxic: the model has no task"):
        resolve_thresholds(KeepParams(thresholds={"toxic": 1}), tasks, {})
    with pytest.raises(MlfilterError, match="no threshold for task 'style'"):
        resolve_thresholds(KeepParams(), tasks, {"educational": 3})
    with pytest.raises(MlfilterError, match="rank_by"):
        rank_task_index(KeepParams(rank_by="toxic"), tasks)
    assert rank_task_index(KeepParams(rank_by="style"), tasks) == 1


def test_quantile_keeps_the_best_fraction_of_each_language_ties_in_input_order() -> None:
    scores = np.asarray([5.0, 1.0, 3.0, 3.0, 3.0, 2.0, 0.5, 4.0, 4.0, 1.0])
    languages = ["en", "en", "en", "en", "en", "en", "de", "de", "de", None]
    groups, names = language_codes(languages, per_language=True)
    assert names == ["de", "en", "unknown"]
    keep = select_best(scores, np.ones(10), groups, rule="quantile", fraction=0.5)
    # en: 6 documents → 3 kept: 5.0, then the first two of the tied 3.0s; de: floor(1.5) = 1, the first 4.0.
    assert np.flatnonzero(keep).tolist() == [0, 2, 3, 7]
    whole = select_best(scores, np.ones(10), language_codes(languages, False)[0], rule="quantile", fraction=0.3)
    assert np.flatnonzero(whole).tolist() == [0, 7, 8]


def test_token_budget_keeps_the_longest_best_first_prefix_within_budget() -> None:
    scores = np.asarray([0.9, 0.8, 0.7, 0.6, 0.5])
    tokens = np.asarray([40, 30, 20, 5, 5])
    groups = np.zeros(5, dtype=np.int64)
    # 50% of 100 tokens: 40 fits, 40 + 30 does not; the prefix stops there even though 20 would fit after.
    keep = select_best(scores, tokens, groups, rule="token_budget", fraction=0.5)
    assert keep.tolist() == [True, False, False, False, False]
    keep = select_best(scores, tokens, groups, rule="token_budget", fraction=0.0, max_tokens=95)
    assert keep.tolist() == [True, True, True, True, False]
    keep = select_best(scores, tokens, groups, rule="token_budget", fraction=1.0)
    assert keep.all()


def test_token_budget_applies_within_each_language() -> None:
    rng = np.random.default_rng(1)
    scores, tokens = rng.random(200), rng.integers(1, 500, 200)
    languages = [["en", "de", "fr"][i % 3] for i in range(200)]
    groups, names = language_codes(languages, per_language=True)
    keep = select_best(scores, tokens, groups, rule="token_budget", fraction=0.25)
    for code in range(len(names)):
        members = groups == code
        budget = 0.25 * tokens[members].sum()
        assert tokens[keep & members].sum() <= budget
        best_dropped = np.max(np.where(members & ~keep, scores, -1))
        assert best_dropped <= np.min(np.where(members & keep, scores, 2)), "a kept document outranks every dropped"
        rejected = np.flatnonzero(members & ~keep)
        next_best = rejected[np.argmax(scores[rejected])]
        assert tokens[keep & members].sum() + tokens[next_best] > budget, "the next best would break the budget"


def test_decisions_apply_masks_in_shard_order_and_check_sizes() -> None:
    mask = np.asarray([True, False, False, True, True])
    decision = KeepDecision.from_mask("quantile", mask)
    assert decision.drop_reason == "below_quantile"
    assert decision.keeps(np.zeros((3, 1))).tolist() == [True, False, False]
    assert decision.keeps(np.zeros((2, 1)), offset=3).tolist() == [True, True]
    decision.check_size(5)
    with pytest.raises(MlfilterError):
        decision.check_size(4)
    with pytest.raises(MlfilterError):
        decision.keeps(np.zeros((3, 1)), offset=3)
    assert KeepDecision.from_mask("quantile", ~mask).fingerprint() != decision.fingerprint()
    threshold = KeepDecision("threshold", (3.0, None))
    assert threshold.keeps(SCORES).tolist() == [True, True, True, False, True]
    assert threshold.drop_reason == "below_threshold"
    assert KeepDecision("all").keeps(SCORES).all()


def test_calibrated_thresholds_are_the_model_cuts_applied_to_raw_scores() -> None:
    tasks = ["educational", "style"]
    keep = KeepParams(thresholds="calibrated")
    assert resolve_thresholds(keep, tasks, {"educational": 3, "style": 1}, [2.95, 1.7]) == {
        "educational": 2.95,
        "style": 1.7,
    }
    with pytest.raises(MlfilterError, match="the model has no calibrated cuts"):
        resolve_thresholds(keep, tasks, {"educational": 3, "style": 1}, None)
    with pytest.raises(MlfilterError, match="task 'style' has no calibrated cut"):
        resolve_thresholds(keep, tasks, {"educational": 3, "style": 1}, [2.95, None])
    calibrated = KeepDecision("calibrated", (2.9995, None))
    assert calibrated.keeps(SCORES).tolist() == [True, False, True, False, True]  # 2.999 < 2.9995: raw, not rounded
    assert KeepDecision("calibrated", (2.5, 1.6), "all").keeps(SCORES).tolist() == [False, True, False, False, False]
    assert calibrated.drop_reason == "below_calibrated_threshold"
    calibrated.check_size(123)  # per-document rule: any shard size
