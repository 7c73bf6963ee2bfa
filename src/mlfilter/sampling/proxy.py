"""Proxy-stratified sampling: spend the annotation budget on documents a cheap model scores high, and know by how much.

Most web pages score low, so a uniform sample of documents to annotate holds few positives. Here a pool of
candidate documents (e.g. a large uniform sample) is scored by a cheap **proxy** (a classifier from an earlier
round: TF-IDF, fastText or an encoder folder), cut into **strata** by proxy score (``edges``), and each stratum gets
an equal share of the sample (**equal allocation**, capped at the stratum's size, the rest spread over the larger
strata). Within a stratum the documents with the smallest seeded hash of their id are drawn (simple random
sampling without replacement, reproducible from the seed), so each document of stratum ``h`` has **inclusion
probability** ``π = n_h / N_h`` — times ``pool_probability``, the chance that it entered the pool at all.

Weighting each annotated document by ``1 / π`` (Horvitz & Thompson 1952; stratified sampling: Cochran, *Sampling
Techniques*, 3rd ed. 1977, ch. 5) makes weighted means, and metrics that are ratios of weighted sums (the Hájek
estimator), estimate the pool's values rather than the skewed sample's. See :mod:`mlfilter.weights`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlfilter.sampling.reservoir import priority


@dataclass(frozen=True)
class StratifiedSample:
    """The outcome for every pool document: ``selected[i]``, ``stratum[i]`` (``0 .. len(edges)``) and
    ``inclusion_probability[i]`` (of every pool document, selected or not); ``sizes`` ``N_h`` and ``allocated``
    ``n_h`` per stratum."""

    selected: np.ndarray
    stratum: np.ndarray
    inclusion_probability: np.ndarray
    sizes: np.ndarray
    allocated: np.ndarray


def allocate_equal(sizes: np.ndarray, sample_size: int) -> np.ndarray:
    """Equal allocation of ``sample_size`` draws over strata of ``sizes`` documents, none above its size.

    A stratum smaller than its share is taken whole and the rest is shared among the others; any remainder of
    an uneven division goes to the largest strata. Returns ``n_h`` (int64, same shape as ``sizes``).

    Raises:
        ValueError: ``sample_size`` is negative or larger than the pool.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if not 0 <= sample_size <= sizes.sum():
        raise ValueError(f"sample size {sample_size} is not between 0 and the pool's {int(sizes.sum())} documents")
    allocated = np.zeros_like(sizes)
    remaining = sample_size
    open_strata = sizes > 0
    while remaining > 0:
        share, extra = divmod(remaining, int(open_strata.sum()))
        order = np.argsort(-(sizes - allocated) * open_strata, kind="stable")
        for rank, h in enumerate(order[: int(open_strata.sum())]):
            grant = min(share + (1 if rank < extra else 0), int(sizes[h] - allocated[h]))
            allocated[h] += grant
            remaining -= grant
        open_strata = allocated < sizes
    return allocated


def proxy_stratified_sample(
    ids: Sequence[str],
    proxy_scores: np.ndarray,
    *,
    edges: Sequence[float],
    sample_size: int,
    seed: int,
    pool_probability: float = 1.0,
) -> StratifiedSample:
    """Draw ``sample_size`` of the pool documents ``ids``, stratified by ``proxy_scores`` at ``edges``.

    Stratum ``h`` holds the scores in ``[edges[h-1], edges[h])`` (the first is open below, the last open above).
    ``pool_probability`` (in ``(0, 1]``) multiplies every inclusion probability.

    Raises:
        ValueError: shapes disagree, ``edges`` are not increasing, a score is NaN, or the size is out of range.
    """
    scores = np.asarray(proxy_scores, dtype=np.float64)
    if scores.shape != (len(ids),):
        raise ValueError(f"proxy scores: expected shape ({len(ids)},), got {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"proxy scores: {int(np.isnan(scores).sum())} NaN score(s); every pool document needs one")
    cuts = np.asarray(edges, dtype=np.float64)
    if len(cuts) and np.any(np.diff(cuts) <= 0):
        raise ValueError(f"edges: expected increasing values, got {list(edges)}")
    if not 0 < pool_probability <= 1:
        raise ValueError(f"pool_probability: expected a probability in (0, 1], got {pool_probability}")
    stratum = np.searchsorted(cuts, scores, side="right")
    sizes = np.bincount(stratum, minlength=len(cuts) + 1)
    allocated = allocate_equal(sizes, sample_size)
    keys = np.array([priority(seed, doc_id) for doc_id in ids], dtype=np.uint64)
    selected = np.zeros(len(ids), dtype=bool)
    for h, n_h in enumerate(allocated):
        members = np.flatnonzero(stratum == h)
        selected[members[np.argsort(keys[members], kind="stable")[:n_h]]] = True
    share = np.divide(allocated, sizes, out=np.zeros(len(sizes)), where=sizes > 0)
    return StratifiedSample(selected, stratum, share[stratum] * pool_probability, sizes, allocated)
