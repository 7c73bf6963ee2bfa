"""Turn the valid scores of several annotators and generations into one label per document and task.

Methods (``aggregate.method``), over the pooled valid scores of a document and task, each annotator's
scores weighted by ``aggregate.weights``:

- ``mean``: the weighted mean.
- ``median``: the weighted median; where the cumulative weight reaches exactly half at a score, the
  mean of that score and the next (so equal weights give the usual median).
- ``majority``: scores are rounded to the nearest class (halves up), the class with the most weight
  wins; ties are settled by ``tie_break``.
- ``min`` / ``max``: the lowest / highest score (weights only leave annotators out).
- ``dawid_skene``: crowd-kit's Dawid–Skene EM over scores rounded to the nearest class; it estimates
  one confusion matrix per annotator, so unreliable annotators count less. The label's posterior
  probability is kept as ``confidence``.

Then ``rounding`` makes the label a class: ``round`` (half up: 2.5 → 3; values within 1e-9 of a
half count as halves, which absorbs float error in weighted means), ``floor``, ``ceil``, or ``none``
(floats kept, for regression targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlfilter.labels.params import Rounding, TieBreak
from mlfilter.scores import TOLERANCE, round_half_up

NO_LABEL = 0
LABELLED = 1
TOO_FEW = 2
TIE = 3
#: Why a document has no label for a task, by status code.
STATUS_REASONS = {TOO_FEW: "too_few_valid_scores", TIE: "majority_tie"}


def apply_rounding(values: np.ndarray, rounding: Rounding) -> np.ndarray:
    """Apply the rounding policy to aggregated labels (NaN stays NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if rounding == "round":
        return round_half_up(values)
    if rounding == "floor":
        return np.floor(values + TOLERANCE)
    if rounding == "ceil":
        return np.ceil(values - TOLERANCE)
    return values


@dataclass
class TaskLabels:
    """The aggregate of one task for every document (NaN / status where there is no label).

    ``n``: valid scores used; ``std`` (population) and ``range`` of those scores; ``agreement``: the
    share of them that, rounded to the nearest class, equal the label rounded to the nearest class;
    ``annotators``: distinct annotators among them; ``confidence``: Dawid–Skene's posterior of the
    label (None for other methods); ``status``: ``LABELLED``, ``TOO_FEW``, ``TIE`` or ``NO_LABEL``.
    """

    label: np.ndarray
    n: np.ndarray
    std: np.ndarray
    range: np.ndarray
    agreement: np.ndarray
    annotators: np.ndarray
    status: np.ndarray
    confidence: np.ndarray | None = None


def aggregate_task(
    doc: np.ndarray,
    annotator: np.ndarray,
    score: np.ndarray,
    weight: np.ndarray,
    n_docs: int,
    *,
    method: str,
    tie_break: TieBreak = "lowest",
    min_valid_scores: int = 1,
    rounding: Rounding = "round",
    dawid_skene_iterations: int = 100,
) -> TaskLabels:
    """Aggregate one task's valid scores (rows ``doc``/``annotator``/``score``/``weight``) per document.

    Rows with weight 0 are left out. Documents with fewer than ``min_valid_scores`` scores get no
    label (status ``TOO_FEW``); a ``majority`` tie with ``tie_break: drop`` gives status ``TIE``.
    """
    keep = weight > 0
    frame = pd.DataFrame(
        {"doc": doc[keep], "annotator": annotator[keep], "score": score[keep], "w": weight[keep].astype(np.float64)}
    )
    grouped = frame.groupby("doc", sort=True)["score"]
    n = _per_doc(grouped.size(), n_docs, 0).astype(np.int64)
    std = _per_doc(grouped.std(ddof=0), n_docs)
    spread = _per_doc(grouped.max() - grouped.min(), n_docs)
    annotators = _per_doc(frame.groupby("doc")["annotator"].nunique(), n_docs, 0).astype(np.int64)

    status = np.full(n_docs, NO_LABEL, dtype=np.int8)
    status[n > 0] = LABELLED
    status[(n > 0) & (n < min_valid_scores)] = TOO_FEW
    confidence = None
    if frame.empty:
        raw = np.full(n_docs, np.nan)
    elif method == "mean":
        sums = (frame["score"] * frame["w"]).groupby(frame["doc"]).sum()
        raw = _per_doc(sums / frame.groupby("doc")["w"].sum(), n_docs)
    elif method == "median":
        raw = _weighted_median(frame, n_docs)
    elif method == "min":
        raw = _per_doc(grouped.min(), n_docs)
    elif method == "max":
        raw = _per_doc(grouped.max(), n_docs)
    elif method == "majority":
        raw, tied = _majority(frame, n_docs, tie_break)
        status[tied & (status == LABELLED)] = TIE
    elif method == "dawid_skene":
        raw, confidence = _dawid_skene(frame, n_docs, dawid_skene_iterations)
    else:
        raise ValueError(f"unknown aggregation method {method!r}")

    label = apply_rounding(raw, rounding)
    label[status != LABELLED] = np.nan
    agreement = _agreement(frame, label, n_docs)
    if confidence is not None:
        confidence[status != LABELLED] = np.nan
    return TaskLabels(label, n, std, spread, agreement, annotators, status, confidence)


def _per_doc(series: pd.Series, n_docs: int, fill: float = np.nan) -> np.ndarray:
    out = np.full(n_docs, fill, dtype=np.float64)
    out[series.index.to_numpy(dtype=np.int64)] = series.to_numpy(dtype=np.float64)
    return out


def _weighted_median(frame: pd.DataFrame, n_docs: int) -> np.ndarray:
    ordered = frame.sort_values(["doc", "score"], kind="mergesort")
    docs = ordered["doc"].to_numpy()
    scores = ordered["score"].to_numpy()
    cumulative = ordered.groupby("doc")["w"].cumsum().to_numpy()
    half = ordered.groupby("doc")["w"].transform("sum").to_numpy() / 2
    reached = np.flatnonzero(cumulative >= half - TOLERANCE)
    first = reached[np.r_[True, docs[reached][1:] != docs[reached][:-1]]]
    value = scores[first]
    exactly_half = np.abs(cumulative[first] - half[first]) <= TOLERANCE
    nxt = np.minimum(first + 1, len(scores) - 1)
    value = np.where(exactly_half, (value + scores[nxt]) / 2, value)
    out = np.full(n_docs, np.nan)
    out[docs[first]] = value
    return out


def _majority(frame: pd.DataFrame, n_docs: int, tie_break: TieBreak) -> tuple[np.ndarray, np.ndarray]:
    votes = frame.assign(cls=round_half_up(frame["score"].to_numpy())).groupby(["doc", "cls"])["w"].sum()
    votes = votes.reset_index()
    best = votes.groupby("doc")["w"].transform("max")
    winners = votes[votes["w"] >= best - TOLERANCE].groupby("doc")["cls"]
    tied = _per_doc(winners.size(), n_docs, 0) > 1
    if tie_break == "highest":
        chosen = winners.max()
    elif tie_break == "mean":
        chosen = winners.mean()
    else:
        chosen = winners.min()
    return _per_doc(chosen, n_docs), tied if tie_break == "drop" else np.zeros(n_docs, dtype=bool)


def _dawid_skene(frame: pd.DataFrame, n_docs: int, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    from crowdkit.aggregation import DawidSkene

    data = pd.DataFrame(
        {"task": frame["doc"], "worker": frame["annotator"], "label": round_half_up(frame["score"]).astype(np.int64)}
    )
    model = DawidSkene(n_iter=iterations)
    labels = model.fit_predict(data)
    probabilities = model.probas_.max(axis=1)
    return _per_doc(labels.astype(np.float64), n_docs), _per_doc(probabilities, n_docs)


def _agreement(frame: pd.DataFrame, label: np.ndarray, n_docs: int) -> np.ndarray:
    if frame.empty:
        return np.full(n_docs, np.nan)
    docs = frame["doc"].to_numpy()
    target = round_half_up(label)[docs]
    agrees = pd.Series(round_half_up(frame["score"].to_numpy()) == target, index=docs, dtype=np.float64)
    share = _per_doc(agrees.groupby(level=0).mean(), n_docs)
    share[np.isnan(label)] = np.nan
    return share
