"""Speed of the evaluate stage's heavy parts against the straightforward way, side by side, same process.

Data: the real Llama-3-70B educational scores of 1000 FineWeb-Edu documents (``../shared/data``, ODC-BY).
Agreement needs several raters, and that file has one: the real score is rater 1, raters 2 and 3
scatter around it (seeded noise, ±1 mostly). Printed per part: seconds, the ratio, and a check that
both ways give the same numbers.

1. Bootstrap confidence intervals (``agreement.bootstrap``: each replicate is one weighted pass over
   per-document sums) against resampling the rows and calling krippendorff / scikit-learn / SciPy on
   every replicate, as one would by hand.
2. Krippendorff's α on many documents (``krippendorff_alpha`` / ``AlphaData``) against the
   ``krippendorff`` package alone, which builds a documents × values × values array.

The test split is scored by the filter stage's engine, whose speed ``bench_filter`` measures.

    python benchmarks/bench_evaluate.py [--samples 200] [--docs 200000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import krippendorff
import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from mlfilter.evaluation.agreement import AlphaData, bootstrap, fleiss_kappa, krippendorff_alpha
from mlfilter.evaluation.ratings import LabelSpace, RatingTable

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"


def load_source(path: Path) -> np.ndarray:
    """The real Llama-3-70B educational scores."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return np.array([float(json.loads(line)["scores"]["score"]) for line in lines])


def raters_around(scores: np.ndarray, n_docs: int, seed: int = 0) -> np.ndarray:
    """``[n_docs, 3]`` ratings: the real scores (cycled) and two noisy raters; 5 % missing each."""
    rng = np.random.default_rng(seed)
    real = np.resize(scores, n_docs)
    noise = rng.choice([-1, 0, 0, 0, 1], size=(n_docs, 2))
    values = np.column_stack([real, np.clip(real[:, None] + noise, 0, 5)])
    values[rng.random(values.shape) < 0.05] = np.nan
    return values


def timed(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def naive_bootstrap(values: np.ndarray, samples: int, seed: int) -> dict[str, tuple[float, float]]:
    """Resample the rows and recompute with the libraries on every replicate."""
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = {k: [] for k in ("ordinal", "interval", "fleiss", "kappa_q", "spearman")}
    for _ in range(samples):
        data = values[rng.integers(0, len(values), len(values))]
        reps["ordinal"].append(krippendorff.alpha(reliability_data=data.T, level_of_measurement="ordinal"))
        reps["interval"].append(krippendorff.alpha(reliability_data=data.T, level_of_measurement="interval"))
        reps["fleiss"].append(fleiss_kappa(data, 6))
        kappas, rhos = [], []
        for i, j in itertools.combinations(range(data.shape[1]), 2):
            both = ~np.isnan(data[:, i]) & ~np.isnan(data[:, j])
            kappas.append(cohen_kappa_score(data[both, i], data[both, j], weights="quadratic"))
            rhos.append(spearmanr(data[both, i], data[both, j]).statistic)
        reps["kappa_q"].append(np.mean(kappas))
        reps["spearman"].append(np.mean(rhos))
    return {k: tuple(np.percentile(v, [2.5, 97.5])) for k, v in reps.items()}


def part_bootstrap(scores: np.ndarray, samples: int) -> None:
    values = raters_around(scores, len(scores))
    table = RatingTable(
        "educational",
        LabelSpace(6, 3),
        ["llama-3-70b", "rater-2", "rater-3"],
        [str(i) for i in range(len(values))],
        values,
        np.array(["en"] * len(values), dtype=object),
    )
    ours, t_ours = timed(bootstrap, table, samples=samples, confidence=0.95, seed=1)
    naive, t_naive = timed(naive_bootstrap, values, samples, 1)
    names = {
        "ordinal": "krippendorff_alpha_ordinal",
        "interval": "krippendorff_alpha_interval",
        "fleiss": "fleiss_kappa",
        "kappa_q": "cohen_kappa_quadratic",
        "spearman": "spearman",
    }
    gap = max(abs(ours[names[k]][end] - v[i]) for k, v in naive.items() for i, end in enumerate(("low", "high")))
    print(f"1. bootstrap, {len(values)} documents × 3 raters, {samples} replicates, 5 statistics")
    print(f"   mlfilter weighted replicates: {t_ours:8.2f} s")
    print(f"   resample + libraries:         {t_naive:8.2f} s")
    print(f"   speed-up {t_naive / t_ours:.1f}×; largest difference between the intervals: {gap:.2e}")


def part_alpha(scores: np.ndarray, n_docs: int) -> None:
    values = raters_around(scores, n_docs)
    print(f"2. Krippendorff's α, {n_docs} documents × 3 raters")
    ours, t_ours = timed(lambda: AlphaData(values, "ordinal").alpha())
    package, t_package = timed(krippendorff.alpha, reliability_data=values.T, level_of_measurement="ordinal")
    print("   (mlfilter = the per-document-sum formulas, used past the package's memory bound and per replicate)")
    print(
        f"   ordinal, 6 labels:  mlfilter {t_ours:7.3f} s | package {t_package:7.3f} s | "
        f"{t_package / t_ours:6.1f}× | α {ours:.6f} vs {package:.6f}"
    )
    grid = np.round(values + np.random.default_rng(1).uniform(-0.5, 0.5, values.shape), 1).clip(0, 5)
    small = grid[: n_docs // 10]
    ours, t_ours = timed(lambda: AlphaData(small, "interval").alpha())
    package, t_package = timed(krippendorff.alpha, reliability_data=small.T, level_of_measurement="interval")
    print(
        f"   interval, 51 values, {len(small)} docs: mlfilter {t_ours:7.3f} s | package {t_package:7.3f} s | "
        f"{t_package / t_ours:6.1f}× | α {ours:.6f} vs {package:.6f}"
    )
    continuous = values + np.random.default_rng(2).normal(0, 0.3, values.shape)
    ours, t_ours = timed(krippendorff_alpha, continuous, "interval")
    distinct = len(np.unique(continuous[~np.isnan(continuous)]))
    need = n_docs * distinct**2 * 8 / 2**30
    print(
        f"   interval, continuous scores ({distinct} distinct): mlfilter {t_ours:7.3f} s, α {ours:.6f}; "
        f"the package would build a {need:,.0f} GiB array"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--samples", type=int, default=200, help="bootstrap replicates")
    parser.add_argument("--docs", type=int, default=200_000, help="documents for the α part")
    args = parser.parse_args()
    if not args.source.exists():
        raise SystemExit(f"{args.source}: the shared real data is needed for this benchmark")
    scores = load_source(args.source)
    part_bootstrap(scores, args.samples)
    part_alpha(scores, args.docs)


if __name__ == "__main__":
    main()
