"""Agreement among raters for one task: any number of raters, missing ratings allowed.

Statistics and the scale each one reads:

- Krippendorff's α, **ordinal** on the scores rounded to labels and **interval** on the scores as
  given (the ``krippendorff`` package). Documents with fewer than two ratings carry no pairs and
  do not count. When every rating is the same value the expected disagreement is zero and α is
  undefined: it is reported as ``null`` with the reason under ``undefined``, never as a number.
- Fleiss' κ on labels, over documents with two or more ratings (with different numbers of raters
  per document the per-document agreement is averaged and the label shares pooled, which is
  Fleiss' κ exactly when every document has the same number of raters).
- Per pair of raters, on the documents both rated: Cohen's κ unweighted and quadratic-weighted
  (scikit-learn) on labels; Spearman ρ and Kendall τ-b (SciPy) and MAE on the scores; exact and
  ±1 agreement on labels. Summaries are the means over the pairs where the statistic is defined.
- Binary agreement at each threshold (positive when the score rounded half up is ≥ the threshold,
  :func:`mlfilter.scores.at_or_above`): Krippendorff's α nominal,
  mean pairwise percent agreement and Cohen's κ, and each rater's positive rate.
- Percentile bootstrap confidence intervals, documents resampled with replacement from a seed.

The bootstrap weights each document by how often it was drawn; α, Fleiss' κ and Cohen's κ are
sums over documents, so a replicate costs one weighted pass instead of a copy of the data.

Every mean over pairs of raters (the summaries, the binary Cohen's κ and agreement, and their bootstrap
replicates) is **weighted by the documents each pair shares**: in a sparse crowd (many raters, each rating
a few documents) a pair sharing 3 documents would otherwise count as much as one sharing 300. The
unweighted means (one vote per pair) are reported beside the summaries under ``unweighted_pair_means``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import krippendorff
import numpy as np
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import cohen_kappa_score

from mlfilter.evaluation.ratings import RatingTable, require_raters, threshold_key
from mlfilter.scores import at_or_above

Level = Literal["nominal", "ordinal", "interval"]

#: The ``krippendorff`` package builds a documents × values × values array; above this many cells
#: the same coincidence-matrix formulas run here from per-document sums instead (same result).
MAX_PACKAGE_CELLS = 25_000_000
#: Summaries of the pairwise statistics, in report order.
PAIR_STATISTICS = (
    "cohen_kappa",
    "cohen_kappa_quadratic",
    "spearman",
    "kendall",
    "exact_agreement",
    "within_one_agreement",
    "mae",
)
#: Pairwise statistics that get bootstrap confidence intervals (as means over the pairs).
PAIR_BOOTSTRAP_STATISTICS = ("cohen_kappa", "cohen_kappa_quadratic", "spearman")
#: Statistics that get bootstrap confidence intervals.
BOOTSTRAP_STATISTICS = (
    "krippendorff_alpha_ordinal",
    "krippendorff_alpha_interval",
    "fleiss_kappa",
    "cohen_kappa",
    "cohen_kappa_quadratic",
    "spearman",
)


#: A rater column of one generation, as tables read without aggregation name them: ``annotator[index]``.
GENERATION_COLUMN = re.compile(r"^(?P<annotator>.+)\[(?P<index>\d+)\]$")


class Undefined(Exception):
    """A statistic has no value on these data; the message says why."""


def _present(values: np.ndarray) -> np.ndarray:
    return ~np.isnan(values)


def value_counts(values: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """``counts[document, value]``: how many raters gave each value of ``domain`` to each document."""
    present = _present(values)
    rows = np.nonzero(present)[0]
    columns = np.searchsorted(domain, values[present])
    counts = np.zeros((values.shape[0], len(domain)), dtype=np.int64)
    np.add.at(counts, (rows, columns), 1)
    return counts


class AlphaData:
    """Krippendorff's α for one level of measurement, from per-document sums.

    ``rows`` are the documents with two or more ratings (the pairable ones). :meth:`alpha` takes
    optional per-document weights, which is how bootstrap replicates are computed.
    """

    def __init__(self, values: np.ndarray, level: Level) -> None:
        present = _present(values)
        self.level = level
        self.rows = np.flatnonzero(present.sum(axis=1) >= 2)
        if len(self.rows) == 0:
            raise Undefined("no document has two or more ratings")
        pairable = values[self.rows]
        self.domain = np.unique(pairable[_present(pairable)])
        if len(self.domain) < 2:
            raise Undefined(
                f"every rating is {self.domain[0]:g}: with no variation the expected disagreement is zero, "
                "so α is undefined"
            )
        self.m = present[self.rows].sum(axis=1).astype(np.float64)
        self.counts: np.ndarray | None = None
        if level != "interval" or len(self.domain) ** 2 * len(self.rows) <= MAX_PACKAGE_CELLS:
            self.counts = value_counts(pairable, self.domain)
        if level == "interval":
            filled = np.where(_present(pairable), pairable, 0.0)
            self.s1 = filled.sum(axis=1)
            self.s2 = (filled**2).sum(axis=1)
            self.within = (2 * self.m * self.s2 - 2 * self.s1**2) / (self.m - 1)

    @property
    def package_fits(self) -> bool:
        """Whether the ``krippendorff`` package's documents × values² array stays within bounds."""
        return self.counts is not None and len(self.rows) * len(self.domain) ** 2 <= MAX_PACKAGE_CELLS

    def package_alpha(self) -> float:
        """α from the ``krippendorff`` package."""
        return float(
            krippendorff.alpha(value_counts=self.counts, value_domain=self.domain, level_of_measurement=self.level)
        )

    def alpha(self, weights: np.ndarray | None = None) -> float:
        """α from the coincidence-matrix formulas, documents weighted by ``weights`` (pairable rows)."""
        w = np.ones(len(self.rows)) if weights is None else weights
        if self.level == "interval":
            n = float((w * self.m).sum())
            observed = float((w * self.within).sum()) / n
            total, squares = float((w * self.s1).sum()), float((w * self.s2).sum())
            expected = (2 * n * squares - 2 * total**2) / (n * (n - 1))
        else:
            assert self.counts is not None
            scaled = self.counts * (w / (self.m - 1))[:, None]
            coincidences = scaled.T @ self.counts - np.diag(scaled.sum(axis=0))
            n_v = coincidences.sum(axis=0)
            n = float(n_v.sum())
            chance = (np.outer(n_v, n_v) - np.diag(n_v)) / (n - 1)
            delta = _distances(self.level, n_v)
            observed = float((coincidences * delta).sum()) / n
            expected = float((chance * delta).sum()) / n
        if expected <= 1e-12:
            raise Undefined("no variation among the ratings in this sample: α is undefined")
        return 1.0 - observed / expected


def _distances(level: Level, n_v: np.ndarray) -> np.ndarray:
    """Krippendorff's squared distances between label positions (nominal or ordinal)."""
    index = np.arange(len(n_v))
    if level == "nominal":
        return (index[:, None] != index[None, :]).astype(np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(n_v)])
    low, high = np.minimum.outer(index, index), np.maximum.outer(index, index)
    between = cumulative[high + 1] - cumulative[low]
    return (between - (n_v[low] + n_v[high]) / 2) ** 2


def krippendorff_alpha(values: np.ndarray, level: Level) -> float:
    """Krippendorff's α of ``values[document, rater]`` (NaN = missing); raises :class:`Undefined`."""
    data = AlphaData(values, level)
    return data.package_alpha() if data.package_fits else data.alpha()


class FleissData:
    """Fleiss' κ over labels for the documents with two or more ratings (optionally weighted)."""

    def __init__(self, classes: np.ndarray, num_targets: int) -> None:
        present = _present(classes)
        self.rows = np.flatnonzero(present.sum(axis=1) >= 2)
        if len(self.rows) == 0:
            raise Undefined("no document has two or more ratings")
        self.counts = value_counts(classes[self.rows], np.arange(num_targets, dtype=np.float64)).astype(np.float64)
        self.n = self.counts.sum(axis=1)

    def kappa(self, weights: np.ndarray | None = None) -> float:
        """Fleiss' κ; raises :class:`Undefined` when every rating falls in one label."""
        w = np.ones(len(self.rows)) if weights is None else weights
        agreement = ((self.counts**2).sum(axis=1) - self.n) / (self.n * (self.n - 1))
        observed = float((w * agreement).sum() / w.sum())
        shares = (w[:, None] * self.counts).sum(axis=0) / float((w * self.n).sum())
        chance = float((shares**2).sum())
        if chance >= 1 - 1e-12:
            raise Undefined("every rating has the same label: chance agreement is 1, so κ is undefined")
        return (observed - chance) / (1 - chance)


def fleiss_kappa(classes: np.ndarray, num_targets: int) -> float:
    """Fleiss' κ of labels ``classes[document, rater]`` (NaN = missing); raises :class:`Undefined`."""
    return FleissData(classes, num_targets).kappa()


@dataclass
class PairData:
    """Two raters' ratings on the documents both rated."""

    first: str
    second: str
    rows: np.ndarray
    values: tuple[np.ndarray, np.ndarray]
    classes: tuple[np.ndarray, np.ndarray]


def pairs_of(table: RatingTable) -> list[PairData]:
    """Every pair of raters with the documents both rated."""
    classes = table.classes()
    result = []
    for i, j in combinations(range(len(table.raters)), 2):
        rows = np.flatnonzero(_present(table.values[:, i]) & _present(table.values[:, j]))
        result.append(
            PairData(
                table.raters[i],
                table.raters[j],
                rows,
                (table.values[rows, i], table.values[rows, j]),
                (classes[rows, i].astype(np.int64), classes[rows, j].astype(np.int64)),
            )
        )
    return result


def _defined(value: float) -> float:
    if not np.isfinite(value):
        raise Undefined("the statistic is undefined on these ratings (a rater gives one value only)")
    return float(value)


def cohen_kappa(first: np.ndarray, second: np.ndarray, labels: Sequence[int], weights: str | None = None) -> float:
    """Cohen's κ (scikit-learn) of two label arrays; raises :class:`Undefined` where it has no value."""
    if len(first) < 2:
        raise Undefined("fewer than two documents rated by both")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _defined(cohen_kappa_score(first, second, labels=list(labels), weights=weights))


def rank_correlation(first: np.ndarray, second: np.ndarray, method: Literal["spearman", "kendall"]) -> float:
    """Spearman ρ or Kendall τ-b (SciPy); raises :class:`Undefined` for constant or too short input."""
    if len(first) < 2:
        raise Undefined("fewer than two documents rated by both")
    if np.all(first == first[0]) or np.all(second == second[0]):
        raise Undefined("a rater gives the same score to every shared document, so the rank correlation is undefined")
    function = spearmanr if method == "spearman" else kendalltau
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _defined(function(first, second).statistic)


class Statistics:
    """Collects statistics into a dict, and the reasons of the undefined ones into ``undefined``."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.undefined: dict[str, str] = {}

    def add(self, name: str, compute: Callable[[], float]) -> None:
        try:
            self.values[name] = float(compute())
        except Undefined as exc:
            self.values[name] = None
            self.undefined[name] = str(exc)

    def result(self) -> dict[str, Any]:
        return {**self.values, "undefined": self.undefined} if self.undefined else dict(self.values)


def pair_statistics(pair: PairData, num_targets: int) -> dict[str, Any]:
    """Every pairwise statistic of two raters on the documents both rated."""
    labels = range(num_targets)
    (va, vb), (ca, cb) = pair.values, pair.classes
    stats = Statistics()
    stats.values.update({"raters": [pair.first, pair.second], "documents": len(pair.rows)})
    stats.add("cohen_kappa", lambda: cohen_kappa(ca, cb, labels))
    stats.add("cohen_kappa_quadratic", lambda: cohen_kappa(ca, cb, labels, "quadratic"))
    stats.add("spearman", lambda: rank_correlation(va, vb, "spearman"))
    stats.add("kendall", lambda: rank_correlation(va, vb, "kendall"))
    stats.add("exact_agreement", lambda: _mean(ca == cb))
    stats.add("within_one_agreement", lambda: _mean(np.abs(ca - cb) <= 1))
    stats.add("mae", lambda: _mean(np.abs(va - vb)))
    return stats.result()


def _mean(values: np.ndarray) -> float:
    if len(values) == 0:
        raise Undefined("no document rated by both")
    return float(np.mean(values))


def summarize_pairs(pairs: Sequence[dict[str, Any]], collector: Statistics) -> None:
    """Mean of each pairwise statistic over the pairs where it is defined, weighted by each pair's shared
    ``documents``; the unweighted means go to ``unweighted_pair_means``."""
    unweighted: dict[str, float | None] = {}
    for name in PAIR_STATISTICS:
        defined = [(p[name], p["documents"]) for p in pairs if p.get(name) is not None]
        unweighted[name] = float(np.mean([value for value, _ in defined])) if defined else None

        def mean(defined: list[tuple[float, int]] = defined, name: str = name) -> float:
            if not defined:
                raise Undefined(f"{name} is undefined for every pair of raters")
            values, shared = np.array(defined, dtype=np.float64).T
            return float(np.average(values, weights=shared))

        collector.add(name, mean)
    collector.values["pair_mean_weights"] = "shared_documents"
    collector.values["unweighted_pair_means"] = unweighted


def binary_agreement(table: RatingTable) -> dict[str, Any]:
    """Agreement on "score ≥ threshold" (rounded: :func:`mlfilter.scores.at_or_above`) at each threshold."""
    result = {}
    for threshold in table.space.thresholds():
        binary = np.where(_present(table.values), at_or_above(table.values, threshold).astype(np.float64), np.nan)
        pairs = [p for p in pairs_of(_with_values(table, binary)) if len(p.rows)]
        stats = Statistics()
        stats.add("krippendorff_alpha_nominal", lambda binary=binary: krippendorff_alpha(binary, "nominal"))
        stats.add(
            "agreement",
            lambda pairs=pairs: _mean(np.concatenate([p.classes[0] == p.classes[1] for p in pairs] or [[]])),
        )
        kappas, shared = [], []
        for pair in pairs:
            try:
                kappas.append(cohen_kappa(pair.classes[0], pair.classes[1], (0, 1)))
                shared.append(len(pair.rows))
            except Undefined:
                continue

        def mean_kappa(kappas: list[float] = kappas, shared: list[int] = shared) -> float:
            if not kappas:
                raise Undefined("Cohen's κ is undefined for every pair at this threshold")
            return float(np.average(kappas, weights=shared))

        stats.add("cohen_kappa", mean_kappa)
        positive = {}
        for i, rater in enumerate(table.raters):
            column = binary[:, i]
            positive[rater] = float(np.nanmean(column)) if _present(column).any() else None
        stats.values["positive_rate"] = positive
        result[threshold_key(threshold)] = stats.result()
    return result


def _with_values(table: RatingTable, values: np.ndarray) -> RatingTable:
    return RatingTable(table.task, table.space, table.raters, table.doc_ids, values, table.languages)


def agreement(
    table: RatingTable, *, bootstrap_samples: int = 0, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Every agreement statistic of one task's raters, with bootstrap confidence intervals.

    Raises :class:`~mlfilter.errors.MlfilterError` when the table has fewer than two raters.
    """
    require_raters(table)
    present = _present(table.values)
    classes = table.classes()
    stats = Statistics()
    stats.values.update(
        {
            "raters": list(table.raters),
            "documents": len(table.doc_ids),
            "documents_with_two_or_more_ratings": int((present.sum(axis=1) >= 2).sum()),
            "ratings": int(present.sum()),
            "ratings_per_rater": {r: int(present[:, i].sum()) for i, r in enumerate(table.raters)},
        }
    )
    stats.add("krippendorff_alpha_ordinal", lambda: krippendorff_alpha(classes, "ordinal"))
    stats.add("krippendorff_alpha_interval", lambda: krippendorff_alpha(table.values, "interval"))
    stats.add("fleiss_kappa", lambda: fleiss_kappa(classes, table.space.num_targets))
    pairs = [pair_statistics(pair, table.space.num_targets) for pair in pairs_of(table)]
    summarize_pairs(pairs, stats)
    stats.values["pairwise"] = pairs
    stats.values["binary"] = binary_agreement(table)
    if bootstrap_samples > 0:
        stats.values["confidence_intervals"] = bootstrap(
            table, samples=bootstrap_samples, confidence=confidence, seed=seed
        )
    return stats.result()


def agreement_by_language(
    table: RatingTable, *, min_documents: int, bootstrap_samples: int = 0, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """:func:`agreement` per language; smaller languages (or ones with one rater) get counts and a reason."""
    result: dict[str, Any] = {}
    for language in sorted(set(table.languages)):
        subset = table.rows(table.languages == language)
        raters = [r for i, r in enumerate(subset.raters) if _present(subset.values[:, i]).any()]
        documents = len(subset.doc_ids)
        if documents < min_documents:
            result[language] = {"documents": documents, "skipped": f"fewer than {min_documents} documents"}
        elif len(raters) < 2:
            result[language] = {"documents": documents, "skipped": "fewer than two raters rated its documents"}
        else:
            result[language] = agreement(
                subset.select(raters), bootstrap_samples=bootstrap_samples, confidence=confidence, seed=seed
            )
    return result


def kappa_distances(k: int, quadratic: bool) -> np.ndarray:
    """Cohen's κ disagreement weights between labels: 0/1, or squared differences (quadratic)."""
    index = np.arange(k)
    return ((index[:, None] - index[None, :]) ** 2 if quadratic else index[:, None] != index[None, :]).astype(float)


def kappa_from_confusion(confusion: np.ndarray, distances: np.ndarray) -> float:
    """Cohen's κ from a (weighted) confusion matrix, the formula scikit-learn uses."""
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    denominator = float((distances * expected).sum())
    if denominator <= 1e-12:
        raise Undefined("undefined in this sample")
    return 1.0 - float((distances * confusion).sum()) / denominator


class PairReplicates:
    """One pair's Cohen's κ (unweighted, quadratic) and Spearman ρ for bootstrap weights of its documents.

    A weight is how often a document was drawn; the results equal scikit-learn's and SciPy's on the
    data with each document repeated that often (ties get mean ranks), without building it.
    """

    def __init__(self, pair: PairData, k: int) -> None:
        self.rows = pair.rows
        self.k = k
        self.codes = pair.classes[0] * k + pair.classes[1]
        self.ranked = [np.unique(values, return_inverse=True)[1] for values in pair.values]
        self.distances = {"cohen_kappa": kappa_distances(k, False), "cohen_kappa_quadratic": kappa_distances(k, True)}

    def statistics(self, weights: np.ndarray) -> dict[str, float]:
        """The defined statistics under ``weights`` (one per document of the pair)."""
        result: dict[str, float] = {}
        if weights.sum() < 2:
            return result
        confusion = np.bincount(self.codes, weights=weights, minlength=self.k * self.k).reshape(self.k, self.k)
        for name, distances in self.distances.items():
            try:
                result[name] = kappa_from_confusion(confusion, distances)
            except Undefined:
                continue
        first, second = (weighted_midranks(inverse, weights) for inverse in self.ranked)
        total = weights.sum()
        da, db = first - (weights * first).sum() / total, second - (weights * second).sum() / total
        variance = (weights * da**2).sum() * (weights * db**2).sum()
        if variance > 1e-12:
            result["spearman"] = float((weights * da * db).sum() / np.sqrt(variance))
        return result


def weighted_midranks(inverse: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each value's rank (ties get their mean rank) if it occurred ``weights`` times; ``inverse`` maps
    values to their position among the sorted distinct values."""
    counts = np.bincount(inverse, weights=weights)
    below = np.cumsum(counts) - counts
    return (below + (counts + 1) / 2)[inverse]


def bootstrap(table: RatingTable, *, samples: int, confidence: float, seed: int) -> dict[str, Any]:
    """Percentile bootstrap intervals of the headline statistics, documents resampled with replacement."""
    rng = np.random.default_rng(seed)
    classes = table.classes()
    k = table.space.num_targets
    n = len(table.doc_ids)
    sources: dict[str, Any] = {}
    for name, build in (
        ("krippendorff_alpha_ordinal", lambda: AlphaData(classes, "ordinal")),
        ("krippendorff_alpha_interval", lambda: AlphaData(table.values, "interval")),
        ("fleiss_kappa", lambda: FleissData(classes, k)),
    ):
        try:
            sources[name] = build()
        except Undefined:
            continue
    pairs = [PairReplicates(p, k) for p in pairs_of(table) if len(p.rows) >= 2]
    replicates: dict[str, list[float]] = {name: [] for name in BOOTSTRAP_STATISTICS}
    for _ in range(samples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        for name, source in sources.items():
            w = weights[source.rows]
            if w.sum() == 0:
                continue
            try:
                replicates[name].append(source.kappa(w) if isinstance(source, FleissData) else source.alpha(w))
            except Undefined:
                continue
        shared = [weights[pair.rows] for pair in pairs]
        per_pair = [pair.statistics(w) for pair, w in zip(pairs, shared, strict=True)]
        for name in PAIR_BOOTSTRAP_STATISTICS:
            defined = [(stats[name], w.sum()) for stats, w in zip(per_pair, shared, strict=True) if name in stats]
            if defined:
                values, drawn = np.array(defined, dtype=np.float64).T
                replicates[name].append(float(np.average(values, weights=drawn)))
    level = (1 - confidence) / 2 * 100
    result: dict[str, Any] = {"level": confidence, "samples": samples, "seed": seed, "method": "percentile"}
    for name, values in replicates.items():
        if values:
            low, high = np.percentile(values, [level, 100 - level])
            result[name] = {"low": float(low), "high": float(high), "defined_samples": len(values)}
        else:
            result[name] = {"low": None, "high": None, "defined_samples": 0}
    return result


def self_agreement(table: RatingTable) -> dict[str, Any]:
    """Each annotator's agreement with itself across its ``n`` generations, by :func:`agreement` (no bootstrap).

    ``table`` is read without aggregation, so each generation is a rater column ``annotator[i]``
    (:data:`GENERATION_COLUMN`); annotators with fewer than two generations are left out. Returns
    annotator → agreement block.
    """
    generations: dict[str, list[str]] = {}
    for rater in table.raters:
        match = GENERATION_COLUMN.match(rater)
        if match:
            generations.setdefault(match["annotator"], []).append(rater)
    return {name: agreement(table.select(raters)) for name, raters in generations.items() if len(raters) >= 2}
