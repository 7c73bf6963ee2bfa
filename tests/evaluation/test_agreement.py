"""Agreement statistics against published values, hand-worked cases, scikit-learn, SciPy and krippendorff."""

from __future__ import annotations

import itertools

import krippendorff
import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import cohen_kappa_score

from mlfilter.errors import MlfilterError
from mlfilter.evaluation import agreement as agreement_module
from mlfilter.evaluation.agreement import (
    AlphaData,
    FleissData,
    Undefined,
    agreement,
    agreement_by_language,
    bootstrap,
    fleiss_kappa,
    kappa_distances,
    kappa_from_confusion,
    krippendorff_alpha,
)
from mlfilter.evaluation.classifier import label_ceiling
from mlfilter.evaluation.ratings import LabelSpace, RatingTable

nan = np.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four observers A-D
# (rows) code twelve units (columns), with missing values. Published: nominal α = 0.743,
# interval α = 0.849, ordinal α = 0.815.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
).T

# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5 categories;
# cell = raters who chose the category. Published κ = 0.210.
FLEISS_TABLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def reference_alpha(values: np.ndarray, metric: str) -> float:
    """Krippendorff's α by the paper's recipe, with plain loops: coincidence matrix o, marginals n_c,
    α = 1 − (n − 1) Σ o_ck δ²_ck / Σ n_c n_k δ²_ck. Independent of the code under test."""
    domain = sorted({v for v in values.ravel() if not np.isnan(v)})
    index = {v: i for i, v in enumerate(domain)}
    o = np.zeros((len(domain), len(domain)))
    for unit in values:
        present = [v for v in unit if not np.isnan(v)]
        if len(present) < 2:
            continue
        for i, j in itertools.permutations(range(len(present)), 2):
            o[index[present[i]], index[present[j]]] += 1 / (len(present) - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()

    def delta(c: int, k: int) -> float:
        if metric == "nominal":
            return float(c != k)
        if metric == "interval":
            return (domain[c] - domain[k]) ** 2
        low, high = min(c, k), max(c, k)
        return (sum(n_c[low : high + 1]) - (n_c[c] + n_c[k]) / 2) ** 2

    observed = sum(o[c, k] * delta(c, k) for c in range(len(domain)) for k in range(len(domain)))
    expected = sum(n_c[c] * n_c[k] * delta(c, k) for c in range(len(domain)) for k in range(len(domain)))
    return 1 - (n - 1) * observed / expected


def table_of(values: np.ndarray, num_targets: int = 6, languages: list[str] | None = None) -> RatingTable:
    values = np.asarray(values, dtype=np.float64)
    raters = [f"r{i}" for i in range(values.shape[1])]
    docs = [f"d{i}" for i in range(values.shape[0])]
    langs = np.array(languages or ["en"] * len(docs), dtype=object)
    return RatingTable("educational", LabelSpace(num_targets, 3), raters, docs, values, langs)


def random_ratings(seed: int, docs: int = 150, raters: int = 4, missing: float = 0.25) -> np.ndarray:
    """Correlated 0..5 ratings with missing values."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 6, docs)
    values = np.clip(truth[:, None] + rng.integers(-1, 2, (docs, raters)), 0, 5).astype(np.float64)
    values[rng.random(values.shape) < missing] = np.nan
    return values


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("interval", 0.849), ("ordinal", 0.815)])
def test_krippendorff_published_example(level: str, published: float) -> None:
    by_hand = reference_alpha(KRIPPENDORFF_2011, level)
    assert round(by_hand, 3) == published
    assert krippendorff_alpha(KRIPPENDORFF_2011, level) == pytest.approx(by_hand, abs=1e-12)
    assert AlphaData(KRIPPENDORFF_2011, level).alpha() == pytest.approx(by_hand, abs=1e-12)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_formulas_match_the_package_with_missing_values(level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    values = random_ratings(1)
    if level == "interval":
        values = values + np.random.default_rng(2).random(values.shape).round(2)
    expected = krippendorff.alpha(reliability_data=values.T, level_of_measurement=level)
    assert krippendorff_alpha(values, level) == pytest.approx(expected, abs=1e-12)
    monkeypatch.setattr(agreement_module, "MAX_PACKAGE_CELLS", 0)
    data = AlphaData(values, level)
    assert not data.package_fits
    assert krippendorff_alpha(values, level) == pytest.approx(expected, abs=1e-12)


def test_weighted_alpha_and_fleiss_equal_the_repeated_documents() -> None:
    values = random_ratings(3, docs=60)
    weights = np.random.default_rng(4).integers(0, 4, len(values)).astype(np.float64)
    repeated = np.repeat(values, weights.astype(int), axis=0)
    for level in ("ordinal", "interval", "nominal"):
        data = AlphaData(values, level)
        expected = krippendorff.alpha(reliability_data=repeated.T, level_of_measurement=level)
        assert data.alpha(weights[data.rows]) == pytest.approx(expected, abs=1e-12)
    fleiss = FleissData(values, 6)
    assert fleiss.kappa(weights[fleiss.rows]) == pytest.approx(fleiss_kappa(repeated, 6), abs=1e-12)


def test_fleiss_published_example() -> None:
    ratings = np.array([np.repeat(np.arange(5), row) for row in FLEISS_TABLE], dtype=np.float64)
    assert round(fleiss_kappa(ratings, 5), 3) == 0.210
    assert fleiss_kappa(ratings, 5) == pytest.approx(0.20993070442195522, abs=1e-12)


def test_fleiss_with_missing_ratings_by_hand() -> None:
    # Documents with fewer than two ratings are left out; P̄ = (1 + 0 + 1) / 3, shares 4/7 and 3/7,
    # P_e = 25/49, κ = (2/3 − 25/49) / (1 − 25/49) = 23/72.
    classes = np.array([[0, 0, 0], [0, 1, nan], [1, 1, nan], [1, nan, nan]])
    assert fleiss_kappa(classes, 2) == pytest.approx(23 / 72, abs=1e-12)


def test_pairwise_statistics_by_hand_with_missing_ratings() -> None:
    table = table_of([[0, 0, 1], [1, 2, 1], [2, 2, 2], [3, nan, 3], [nan, 4, 4]])
    result = agreement(table)
    pair = next(p for p in result["pairwise"] if p["raters"] == ["r0", "r1"])
    # r0 and r1 share documents 0-2: (0, 0), (1, 2), (2, 2).
    assert pair["documents"] == 3
    assert pair["exact_agreement"] == pytest.approx(2 / 3)
    assert pair["within_one_agreement"] == pytest.approx(1.0)
    assert pair["mae"] == pytest.approx(1 / 3)
    assert pair["cohen_kappa"] == pytest.approx(0.5)  # p_o = 2/3, p_e = 1/3
    assert pair["cohen_kappa_quadratic"] == pytest.approx(0.8)  # 1 − (1/3) / (5/3)
    assert pair["spearman"] == pytest.approx(1.5 / np.sqrt(3))
    assert pair["kendall"] == pytest.approx(2 / np.sqrt(6))  # τ-b: 2 concordant, one tie in r1
    # Pair means are weighted by shared documents: r0–r1 share 3, r0–r2 share 4, r1–r2 share 4.
    means = [p["exact_agreement"] for p in result["pairwise"]]
    shared = [p["documents"] for p in result["pairwise"]]
    assert shared == [3, 4, 4]
    assert result["exact_agreement"] == pytest.approx(np.average(means, weights=shared))
    assert result["unweighted_pair_means"]["exact_agreement"] == pytest.approx(np.mean(means))
    assert result["pair_mean_weights"] == "shared_documents"
    assert result["documents"] == 5
    assert result["documents_with_two_or_more_ratings"] == 5
    assert result["ratings_per_rater"] == {"r0": 4, "r1": 4, "r2": 5}


def test_cohen_kappa_textbook_example() -> None:
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 → p_o = 0.7, p_e = 0.5, κ = 0.4.
    first = np.array([1] * 25 + [0] * 25, dtype=float)
    second = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15, dtype=float)
    result = agreement(table_of(np.column_stack([first, second]), num_targets=2))
    assert result["cohen_kappa"] == pytest.approx(0.4)


def test_pairwise_statistics_match_sklearn_and_scipy() -> None:
    values = random_ratings(5, raters=3)
    result = agreement(table_of(values))
    for pair in result["pairwise"]:
        i, j = (int(r[1:]) for r in pair["raters"])
        both = ~np.isnan(values[:, i]) & ~np.isnan(values[:, j])
        a, b = values[both, i], values[both, j]
        assert pair["cohen_kappa"] == pytest.approx(cohen_kappa_score(a, b))
        assert pair["cohen_kappa_quadratic"] == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"))
        assert pair["spearman"] == pytest.approx(spearmanr(a, b).statistic)
        assert pair["kendall"] == pytest.approx(kendalltau(a, b).statistic)
        assert pair["mae"] == pytest.approx(np.mean(np.abs(a - b)))
    assert result["krippendorff_alpha_ordinal"] == pytest.approx(
        krippendorff.alpha(reliability_data=values.T, level_of_measurement="ordinal")
    )


def test_kappa_from_confusion_matches_sklearn() -> None:
    rng = np.random.default_rng(6)
    a = rng.integers(0, 6, 300)
    b = np.clip(a + rng.integers(-2, 3, 300), 0, 5)
    weights = rng.integers(0, 3, 300).astype(float)
    confusion = np.bincount(a * 6 + b, weights=weights, minlength=36).reshape(6, 6)
    ra, rb = np.repeat(a, weights.astype(int)), np.repeat(b, weights.astype(int))
    assert kappa_from_confusion(confusion, kappa_distances(6, False)) == pytest.approx(cohen_kappa_score(ra, rb))
    assert kappa_from_confusion(confusion, kappa_distances(6, True)) == pytest.approx(
        cohen_kappa_score(ra, rb, weights="quadratic")
    )


def test_binary_agreement_by_hand() -> None:
    table = table_of([[0, 0], [1, 2], [2, 2], [3, nan], [nan, 4]])
    at_two = agreement(table)["binary"]["2"]
    # ≥ 2: r0 → 0, 0, 1, 1, – ; r1 → 0, 1, 1, –, 1; shared documents 0-2 agree on 2 of 3.
    assert at_two["agreement"] == pytest.approx(2 / 3)
    assert at_two["positive_rate"] == {"r0": 0.5, "r1": 0.75}
    assert at_two["cohen_kappa"] == pytest.approx(cohen_kappa_score([0, 0, 1], [0, 1, 1]))
    binary = np.array([[0, 0], [0, 1], [1, 1], [1, nan], [nan, 1]])
    assert at_two["krippendorff_alpha_nominal"] == pytest.approx(reference_alpha(binary, "nominal"))
    assert set(agreement(table)["binary"]) == {"1", "2", "3", "4", "5"}


def test_constant_ratings_give_null_with_reasons_not_numbers() -> None:
    result = agreement(table_of(np.full((8, 3), 3.0)))
    for name in ("krippendorff_alpha_ordinal", "krippendorff_alpha_interval", "fleiss_kappa", "cohen_kappa"):
        assert result[name] is None
        assert "undefined" in result["undefined"][name] or "same" in result["undefined"][name]
    assert "every rating is 3" in result["undefined"]["krippendorff_alpha_ordinal"]
    assert result["spearman"] is None
    assert result["exact_agreement"] == 1.0
    assert result["mae"] == 0.0


def test_one_constant_rater_keeps_alpha_but_not_its_correlation() -> None:
    values = np.column_stack([np.full(6, 2.0), [0, 1, 2, 3, 4, 5]])
    result = agreement(table_of(values))
    assert result["krippendorff_alpha_interval"] == pytest.approx(reference_alpha(values, "interval"))
    assert result["spearman"] is None
    assert "same score" in result["pairwise"][0]["undefined"]["spearman"]


def test_a_single_rater_is_a_clear_error() -> None:
    with pytest.raises(MlfilterError, match="agreement needs at least 2 raters, found 1 \\(r0\\)"):
        agreement(table_of(np.array([[1.0], [2.0], [3.0]])))


def test_no_shared_documents() -> None:
    result = agreement(table_of([[1, nan], [nan, 2], [3, nan]]))
    assert result["krippendorff_alpha_ordinal"] is None
    assert result["undefined"]["krippendorff_alpha_ordinal"] == "no document has two or more ratings"
    assert result["pairwise"][0]["documents"] == 0
    with pytest.raises(Undefined):
        AlphaData(np.array([[1.0, nan]]), "nominal")


def test_bootstrap_matches_resampling_the_documents() -> None:
    values = random_ratings(7, docs=80, raters=3)
    table = table_of(values)
    samples = 40
    result = bootstrap(table, samples=samples, confidence=0.9, seed=11)
    rng = np.random.default_rng(11)
    slow: dict[str, list[float]] = {"krippendorff_alpha_ordinal": [], "cohen_kappa_quadratic": [], "spearman": []}
    for _ in range(samples):
        resampled = values[rng.integers(0, len(values), len(values))]
        slow["krippendorff_alpha_ordinal"].append(
            krippendorff.alpha(reliability_data=resampled.T, level_of_measurement="ordinal")
        )
        kappas, rhos, shared = [], [], []
        for i, j in itertools.combinations(range(3), 2):
            both = ~np.isnan(resampled[:, i]) & ~np.isnan(resampled[:, j])
            kappas.append(cohen_kappa_score(resampled[both, i], resampled[both, j], weights="quadratic"))
            rhos.append(spearmanr(resampled[both, i], resampled[both, j]).statistic)
            shared.append(both.sum())  # pair means are weighted by shared documents
        slow["cohen_kappa_quadratic"].append(np.average(kappas, weights=shared))
        slow["spearman"].append(np.average(rhos, weights=shared))
    for name, replicates in slow.items():
        low, high = np.percentile(replicates, [5, 95])
        assert result[name]["low"] == pytest.approx(low, abs=1e-9)
        assert result[name]["high"] == pytest.approx(high, abs=1e-9)
        assert result[name]["defined_samples"] == samples
    assert result["level"] == 0.9 and result["seed"] == 11


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    table = table_of(random_ratings(8, docs=200))
    first = agreement(table, bootstrap_samples=200, seed=3)
    again = agreement(table, bootstrap_samples=200, seed=3)
    other = agreement(table, bootstrap_samples=200, seed=4)
    assert first["confidence_intervals"] == again["confidence_intervals"]
    assert first["confidence_intervals"] != other["confidence_intervals"]
    for name in agreement_module.BOOTSTRAP_STATISTICS:
        interval = first["confidence_intervals"][name]
        assert interval["low"] < first[name] < interval["high"], name


def test_per_language_blocks_and_skips() -> None:
    values = random_ratings(9, docs=40, raters=2, missing=0.0)
    languages = ["en"] * 30 + ["de"] * 6 + ["fr"] * 4
    values[36:, 1] = np.nan  # no second rater for fr
    result = agreement_by_language(table_of(values, languages=languages), min_documents=5)
    assert result["en"]["documents"] == 30
    assert result["en"]["krippendorff_alpha_ordinal"] == pytest.approx(
        krippendorff.alpha(reliability_data=values[:30].T, level_of_measurement="ordinal")
    )
    assert result["de"]["documents"] == 6 and "krippendorff_alpha_ordinal" in result["de"]
    assert result["fr"] == {"documents": 4, "skipped": "fewer than 5 documents"}
    small = agreement_by_language(table_of(values, languages=languages), min_documents=2)
    assert small["fr"]["skipped"] == "fewer than two raters rated its documents"


def test_sparse_panel_pair_means_are_weighted_by_shared_documents() -> None:
    """Two raters label 200 documents alike; six more each rate 4 documents at random, so 27 of 28 pairs
    share at most 4 documents. One vote per pair would let those small pairs decide the panel's agreement."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 6, 200).astype(np.float64)
    values = np.full((200, 8), np.nan)
    values[:, 0] = truth
    values[:, 1] = np.clip(truth + rng.choice([-1, 0, 0, 0, 1], 200), 0, 5)
    for rater in range(2, 8):
        rows = rng.choice(200, 4, replace=False)
        values[rows, rater] = rng.integers(0, 6, 4)
    result = agreement(table_of(values))

    weighted, unweighted, total = 0.0, [], 0
    for i, j in itertools.combinations(range(8), 2):
        both = ~np.isnan(values[:, i]) & ~np.isnan(values[:, j])
        if both.sum() < 2:
            continue
        a, b = values[both, i].astype(int), values[both, j].astype(int)
        kappa = cohen_kappa_score(a, b, labels=list(range(6)), weights="quadratic")
        if np.isfinite(kappa):
            weighted += both.sum() * kappa
            total += both.sum()
            unweighted.append(kappa)
    assert result["cohen_kappa_quadratic"] == pytest.approx(weighted / total)
    assert result["unweighted_pair_means"]["cohen_kappa_quadratic"] == pytest.approx(np.mean(unweighted))
    core = cohen_kappa_score(values[:, 0].astype(int), values[:, 1].astype(int), weights="quadratic")
    assert abs(result["cohen_kappa_quadratic"] - core) < 0.15  # the core pair holds 200 of 248 shared documents
    assert result["cohen_kappa_quadratic"] - result["unweighted_pair_means"]["cohen_kappa_quadratic"] > 0.3

    ceiling = label_ceiling({"cohen_kappa_quadratic": 0.6, "spearman": 0.6}, result)
    assert ceiling["cohen_kappa_quadratic"]["ratio"] == pytest.approx(0.6 / (weighted / total))

    intervals = agreement(table_of(values), bootstrap_samples=200, seed=0)["confidence_intervals"]
    low, high = intervals["cohen_kappa_quadratic"]["low"], intervals["cohen_kappa_quadratic"]["high"]
    assert low <= result["cohen_kappa_quadratic"] <= high
    assert low > result["unweighted_pair_means"]["cohen_kappa_quadratic"]
