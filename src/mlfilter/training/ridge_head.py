"""Linear regression heads fitted in closed form on frozen-encoder embeddings (``training.frozen_head: ridge``).

With a frozen encoder a linear regression head is a linear model of the pooled embedding, so instead of
training it by gradient descent it can be fitted exactly: ridge regression (Hoerl & Kennard 1970; scikit-learn
:class:`~sklearn.linear_model.Ridge`), ``w = argmin Σ_i v_i (y_i − w·x_i − b)² + α‖w‖²`` with ``v_i`` the
documents' loss weights, per task on its labelled training documents. The L2 strength ``α`` is chosen from
``ridge_alphas`` by the validation ``best_metric`` — the same selection rule as the best epoch of a trained head.
The fitted coefficients become the weights of the model's linear head, so the saved model is an ordinary
:class:`~mlfilter.modeling.AnnotatorModel` that every stage scores the same way. :func:`select_ridge` is the
same fit and selection on any features: the ``model2vec`` classifier kind's heads on static embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import Ridge

from mlfilter.modeling import AnnotatorModel
from mlfilter.params import TaskParams
from mlfilter.training.metrics import all_metrics


@dataclass(frozen=True)
class RidgeFit:
    """The chosen L2 strength, its validation value of the selection metric, every tried value, and the chosen
    fit: ``coef`` ``[num_tasks, features]`` and ``intercept`` ``[num_tasks]`` (``score = x @ coef.T + intercept``)."""

    alpha: float
    value: float | None
    tried: dict[str, float | None]
    coef: np.ndarray
    intercept: np.ndarray


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
    fits = {alpha: _fit_all(train_features, train_labels, train_weights, tasks, alpha) for alpha in alphas}
    tried: dict[str, float | None] = {}
    best_alpha, best_key = alphas[0], -math.inf
    for alpha, (coef, intercept) in fits.items():
        scores = val_features.astype(np.float64) @ coef.T + intercept
        value = all_metrics(scores, scores, val_labels.astype(np.float64), tasks, is_regression=True).get(metric)
        finite = value is not None and math.isfinite(value)
        tried[f"{alpha:g}"] = float(value) if finite else None
        key = (value if higher_is_better else -value) if finite else -math.inf
        if key > best_key:
            best_alpha, best_key = alpha, key
    coef, intercept = fits[best_alpha]
    return RidgeFit(best_alpha, tried[f"{best_alpha:g}"], tried, coef, intercept)


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
) -> RidgeFit:
    """:func:`select_ridge` on the embeddings (``[n, model.embedding_size]``), then set the model's linear heads to
    the chosen fit.

    Raises:
        ValueError: the model's heads are not linear regression heads, or a task has no labelled document.
    """
    if not model.config.is_regression or model.config.head_hidden_size:
        raise ValueError("ridge heads need linear regression heads (is_regression: true, head_hidden_size: 0)")
    fit = select_ridge(
        train_embeddings,
        train_labels,
        val_embeddings,
        val_labels,
        tasks=tasks,
        alphas=alphas,
        metric=metric,
        higher_is_better=higher_is_better,
        train_weights=train_weights,
    )
    with torch.no_grad():
        for index, head in enumerate(model.heads.tasks):
            head.layers.weight.copy_(torch.from_numpy(fit.coef[index : index + 1]).float())
            head.layers.bias.copy_(torch.tensor([fit.intercept[index]], dtype=torch.float32))
    return fit


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
