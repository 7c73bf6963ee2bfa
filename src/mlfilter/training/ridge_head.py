"""Linear regression heads fitted in closed form on frozen-encoder embeddings (``training.frozen_head: ridge``).

With a frozen encoder a linear regression head is a linear model of the pooled embedding, so instead of
training it by gradient descent it can be fitted exactly: ridge regression (Hoerl & Kennard 1970; scikit-learn
:class:`~sklearn.linear_model.Ridge`), ``w = argmin Σ_i v_i (y_i − w·x_i − b)² + α‖w‖²`` with ``v_i`` the
documents' loss weights, per task on its labelled documents.

Closed form makes every document usable for both fitting and selection. Each document's leave-one-out
prediction (the model fitted on all other documents; exact and cheap for ridge: Allen 1974, "The relationship
between variable selection and data augmentation and a method for prediction", Technometrics 16(1); scikit-learn
:class:`~sklearn.linear_model.RidgeCV`) is computed over train and val together for each ``α`` of
``ridge_alphas``; ``α`` is chosen by ``best_metric`` on those predictions, and the heads are then fitted on train
and val together. The leave-one-out predictions at the chosen ``α`` are out-of-sample scores for every labelled
document: their values on the val documents are the candidate's validation figures (comparable with a trained
candidate's), and all of them calibrate the cut (:mod:`mlfilter.training.calibration`) — ten times the
positives of the validation split alone. On 1000 real FineWeb-Edu labels (5-fold CV over 800 documents, never
the held-out part) this raised Spearman from 0.656 to 0.665 and the calibrated F1 at threshold 3 from 0.38 to
0.43 over choosing ``α`` and the cut on val and fitting on train only; on the held-out parts of 10 seeded splits
(``benchmarks/bench_train_real_data.py``), by +0.006 and +0.017 on average.

The fitted coefficients become the weights of the model's linear head, so the saved model is an ordinary
:class:`~mlfilter.modeling.AnnotatorModel` that every stage scores the same way. :func:`select_ridge` is the
plain fit on train and selection on val on any features: the ``model2vec`` classifier kind's heads on static
embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import make_scorer

from mlfilter.modeling import AnnotatorModel
from mlfilter.params import TaskParams
from mlfilter.training.metrics import all_metrics


@dataclass(frozen=True)
class RidgeFit:
    """The chosen L2 strength, what chose it, and the chosen fit.

    ``value``: the selection metric on the val documents; ``tried``: per ``α`` (formatted ``{α:g}``), the value
    the choice was made on; ``coef`` ``[num_tasks, features]`` and ``intercept`` ``[num_tasks]``
    (``score = x @ coef.T + intercept``). From :func:`fit_ridge_heads`, ``value`` and ``tried`` are those of the
    leave-one-out predictions (``tried``: over train and val), and ``loo_scores`` holds them at the chosen ``α``,
    ``[len(train) + len(val), num_tasks]`` (train rows first; NaN where the document has no label for that task).
    """

    alpha: float
    value: float | None
    tried: dict[str, float | None]
    coef: np.ndarray
    intercept: np.ndarray
    loo_scores: np.ndarray | None = None


def select_ridge(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    *,
    tasks: Sequence[TaskParams],
    alphas: Sequence[float],
    metric: str,
    higher_is_better: bool,
    train_weights: np.ndarray | None = None,
) -> RidgeFit:
    """Fit one ridge regression per task for each of ``alphas`` and keep the fit best on val by ``metric``.

    Features are ``[n, features]``, labels ``[n, num_tasks]`` (NaN: missing, left out of that task's fit),
    ``train_weights`` ``[n]`` the documents' loss weights. ``metric`` is a key of
    :func:`~mlfilter.training.metrics.all_metrics` (e.g. ``spearman_mean``); an undefined (NaN) value loses. Ties
    keep the earlier ``α``.

    Raises:
        ValueError: a task has no labelled training document.
    """
    fits = [_fit_all(train_features, train_labels, train_weights, tasks, alpha) for alpha in alphas]
    values = [
        _metric(val_features.astype(np.float64) @ coef.T + intercept, val_labels.astype(np.float64), tasks, metric)
        for coef, intercept in fits
    ]
    best, tried = _choose(alphas, values, higher_is_better)
    coef, intercept = fits[best]
    return RidgeFit(alphas[best], values[best], tried, coef, intercept)


def fit_ridge_heads(
    model: AnnotatorModel,
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    val_embeddings: np.ndarray,
    val_labels: np.ndarray,
    *,
    tasks: Sequence[TaskParams],
    alphas: Sequence[float],
    metric: str,
    higher_is_better: bool,
    train_weights: np.ndarray | None = None,
    val_weights: np.ndarray | None = None,
) -> RidgeFit:
    """Choose ``α`` from ``alphas`` by leave-one-out over train and val, fit every task's head on both, set the heads.

    Embeddings are ``[n, model.embedding_size]``, labels ``[n, num_tasks]`` (NaN: missing, left out of that
    task's fit), weights ``[n]`` or None (1 each). ``metric`` is a key of
    :func:`~mlfilter.training.metrics.all_metrics` (e.g. ``spearman_mean``); an undefined (NaN) value loses.
    Ties keep the smaller ``α``.

    Raises:
        ValueError: the model's heads are not linear regression heads, or a task has fewer than two labelled
            documents (leave-one-out needs two).
    """
    if not model.config.is_regression or model.config.head_hidden_size:
        raise ValueError("ridge heads need linear regression heads (is_regression: true, head_hidden_size: 0)")
    x = np.concatenate([train_embeddings, val_embeddings]).astype(np.float64)
    labels = np.concatenate([train_labels, val_labels]).astype(np.float64)
    weights = None
    if train_weights is not None or val_weights is not None:
        weights = np.concatenate(
            [
                np.ones(len(part)) if w is None else np.asarray(w, dtype=np.float64)
                for part, w in ((train_labels, train_weights), (val_labels, val_weights))
            ]
        )
    loo = _leave_one_out(x, labels, weights, tasks, alphas)
    best, tried = _choose(alphas, [_metric(scores, labels, tasks, metric) for scores in loo], higher_is_better)
    coef, intercept = _fit_all(x, labels, weights, tasks, alphas[best])
    with torch.no_grad():
        for index, head in enumerate(model.heads.tasks):
            head.layers.weight.copy_(torch.from_numpy(coef[index : index + 1]).float())
            head.layers.bias.copy_(torch.tensor([intercept[index]], dtype=torch.float32))
    on_val = slice(len(train_labels), None)
    value = _metric(loo[best][on_val], labels[on_val], tasks, metric)
    return RidgeFit(float(alphas[best]), value, tried, coef, intercept, loo[best])


def _choose(
    alphas: Sequence[float], values: Sequence[float | None], higher_is_better: bool
) -> tuple[int, dict[str, float | None]]:
    """The index of the best of ``values`` (one per ``α``; None loses; ties keep the earlier ``α``) and the
    values keyed by ``{α:g}``."""
    keys = [-math.inf if v is None else (v if higher_is_better else -v) for v in values]
    return max(range(len(keys)), key=keys.__getitem__), {f"{a:g}": v for a, v in zip(alphas, values, strict=True)}


def _metric(scores: np.ndarray, labels: np.ndarray, tasks: Sequence[TaskParams], metric: str) -> float | None:
    """``metric`` of ``scores`` against ``labels`` (``[n, num_tasks]`` each), None when undefined."""
    filled = np.nan_to_num(scores)  # NaN only where the label is missing too, which the metrics leave out
    value = all_metrics(filled, filled, labels, tasks, is_regression=True).get(metric)
    return float(value) if value is not None and math.isfinite(value) else None


def _no_score(y_true: np.ndarray, y_pred: np.ndarray, **kwargs: object) -> float:
    """A constant: RidgeCV keeps its leave-one-out predictions only when given a scorer; α is chosen here."""
    return 0.0


def _leave_one_out(
    x: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, tasks: Sequence[TaskParams], alphas: Sequence[float]
) -> np.ndarray:
    """Leave-one-out ridge predictions ``[len(alphas), n, num_tasks]`` (NaN where a label is missing)."""
    out = np.full((len(alphas), *labels.shape), np.nan)
    for index, task in enumerate(tasks):
        present = ~np.isnan(labels[:, index])
        if present.sum() < 2:
            raise ValueError(
                f"task {task.name!r}: {int(present.sum())} labelled document(s) in train and val; a ridge head "
                "needs at least two"
            )
        ridge = RidgeCV(alphas=list(alphas), scoring=make_scorer(_no_score), store_cv_results=True).fit(
            x[present], labels[present, index], sample_weight=None if weights is None else weights[present]
        )
        out[:, present, index] = ridge.cv_results_.reshape(int(present.sum()), len(alphas)).T
    return out


def _fit_all(
    x: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, tasks: Sequence[TaskParams], alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``[num_tasks, features]`` and intercepts ``[num_tasks]`` of one ridge fit per task."""
    coefs, intercepts = [], []
    for index, task in enumerate(tasks):
        present = ~np.isnan(labels[:, index])
        if not present.any():
            raise ValueError(f"task {task.name!r}: no labelled training document to fit its ridge head on")
        ridge = Ridge(alpha=alpha).fit(
            x[present].astype(np.float64),
            labels[present, index].astype(np.float64),
            sample_weight=None if weights is None else weights[present],
        )
        coefs.append(np.asarray(ridge.coef_, dtype=np.float64))
        intercepts.append(float(ridge.intercept_))
    return np.stack(coefs), np.asarray(intercepts)
