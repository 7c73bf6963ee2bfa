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

import dataclasses
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.classifiers.base import ENCODER, classifier_kind, load_classifier
from mlfilter.documents import read_documents
from mlfilter.errors import MlfilterError
from mlfilter.params import TaskParams
from mlfilter.records import ShardedWriter
from mlfilter.sampling.pipeline import replace_folder
from mlfilter.sampling.reservoir import priority
from mlfilter.weights import INCLUSION_FIELD


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


def proxy_scores(texts: Sequence[str], task: TaskParams, *, model: str | None, train: str | None) -> np.ndarray:
    """The cheap proxy's score for ``task`` of each text, shape ``(len(texts),)``.

    ``model``: a classifier folder from an earlier round (TF-IDF, fastText, or a transformers encoder scored
    through the filter stage's engine). ``train``: a labelled split (the labels so far), on which a TF-IDF + ridge
    proxy is fitted here. Exactly one of the two is given.

    Raises:
        MlfilterError: neither or both are given, or the model has no head for ``task``.
    """
    if (model is None) == (train is None):
        raise MlfilterError("name the proxy: a classifier folder (--model) or labels to fit one on (--train)")
    if train is not None:
        from mlfilter.evaluation.baseline import fit_baseline
        from mlfilter.evaluation.classifier import load_split

        return fit_baseline(load_split(train, [task]), [task]).predict(texts)[:, 0]
    assert model is not None
    if classifier_kind(model) == ENCODER:
        from mlfilter.evaluation.classifier import predict_scores

        scores, names, _ = predict_scores(model, texts, desc="proxy_sample: scoring documents")
    else:
        classifier = load_classifier(model)
        scores, names = classifier.predict(texts), classifier.task_names
    if task.name not in names:
        raise MlfilterError(f"{model}: the proxy has no head for task {task.name!r}; its heads: {', '.join(names)}")
    return np.asarray(scores, dtype=np.float64)[:, list(names).index(task.name)]


def write_proxy_sample(
    pool: Sequence[str],
    output: str | os.PathLike[str],
    *,
    task: TaskParams,
    model: str | None,
    train: str | None,
    sample_size: int,
    edges: Sequence[float] | None,
    seed: int,
    pool_probability: float = 1.0,
) -> dict[str, Any]:
    """Score the ``pool`` documents with the proxy, draw the sample, and write it as document shards to ``output``
    with ``metadata.inclusion_probability`` (and ``metadata.proxy_score``). Returns the report: documents read,
    kept and ``not_sampled``, and per stratum its score range, size ``N_h``, draws ``n_h`` and probability.

    ``edges`` default to the halves between the task's labels (strata = the proxy score rounded to a label).
    The output folder is replaced whole once every shard is written.
    """
    ids: list[str] = []
    documents = []
    for _, document in read_documents(pool):
        ids.append(document.id)
        documents.append(document)
    scores = proxy_scores([d.text for d in documents], task, model=model, train=train)
    cuts = list(edges) if edges is not None else [label - 0.5 for label in range(1, task.num_targets)]
    drawn = proxy_stratified_sample(
        ids, scores, edges=cuts, sample_size=sample_size, seed=seed, pool_probability=pool_probability
    )
    target = Path(output)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    try:
        with ShardedWriter(tmp) as writer:
            for position in np.flatnonzero(drawn.selected):
                document = documents[position]
                metadata = {
                    **document.metadata,
                    INCLUSION_FIELD: float(drawn.inclusion_probability[position]),
                    "proxy_score": float(scores[position]),
                }
                writer.write(dataclasses.replace(document, metadata=metadata).to_record())
        replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bounds = [-math.inf, *cuts, math.inf]
    return {
        "task": task.name,
        "proxy": {"model": model} if model is not None else {"tfidf_fitted_on": train},
        "seed": seed,
        "documents": {"seen": len(ids), "kept": int(drawn.selected.sum()), "not_sampled": int((~drawn.selected).sum())},
        "strata": [
            {
                "low": None if math.isinf(bounds[h]) else bounds[h],
                "high": None if math.isinf(bounds[h + 1]) else bounds[h + 1],
                "pool": int(drawn.sizes[h]),
                "drawn": int(drawn.allocated[h]),
                "inclusion_probability": float(drawn.allocated[h] / drawn.sizes[h]) * pool_probability
                if drawn.sizes[h]
                else None,
            }
            for h in range(len(drawn.sizes))
        ],
    }
