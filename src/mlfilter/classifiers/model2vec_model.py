"""Static token embeddings distilled from the encoder, with a linear head per task (kind ``model2vec``).

model2vec (Tulkens & van Dongen 2024, the ``model2vec`` package on PyPI) turns a sentence encoder into a table of
static token vectors: every token of the encoder's vocabulary goes through the encoder once on its own (mean-pooled
output), the vectors are reduced by PCA to ``pca_dims`` and scaled by the SIF weight ``a / (a + p)`` of the token's
Zipf probability ``p ∝ 1 / rank`` (Arora et al. 2017, "A Simple but Tough-to-Beat Baseline for Sentence
Embeddings"). A document's embedding is the mean vector of its first ``max_length`` tokens, L2-normalised: a table
lookup per token, no torch at scoring time, hundreds of documents per second on one core
(``benchmarks/bench_filter_engine.py``). Each task's score is ``x · w + b`` on that embedding, clipped into
``0 .. num_targets - 1``; training fits ``w, b`` by ridge regression with the strength chosen on val
(:func:`mlfilter.training.ridge_head.select_ridge`).

A saved folder holds ``static_model/`` (the model2vec ``StaticModel``, written by its own ``save_pretrained``:
``model.safetensors``, ``tokenizer.json``, ``config.json``; ``StaticModel.from_pretrained`` loads it without
mlfilter), ``heads.npz`` (``coef`` ``[tasks, dims]``, ``intercept`` ``[tasks]``, read with ``allow_pickle=False``)
and :data:`~mlfilter.classifiers.base.CONFIG_NAME`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.atomic import atomic_path
from mlfilter.classifiers.base import CONFIG_NAME, read_classifier_config, write_classifier_config
from mlfilter.params import ParamsError

KIND = "model2vec"
STATIC_FOLDER = "static_model"
HEADS_NAME = "heads.npz"


@dataclass(frozen=True)
class Model2VecConfig:
    """Distillation and head settings (``training.model2vec`` in ``params.yaml``; names as in
    ``model2vec.distill``).

    ``pca_dims``: dimensions kept by PCA (None: no PCA). ``sif_coefficient``: ``a`` of the SIF weight (None: no
    weighting). ``token_remove_pattern``: vocabulary tokens matching this regex are left out of the distilled
    model (model2vec's default drops BERT's ``[unusedN]``; a narrower vocabulary distils faster: a forward pass per
    token, ~70 CPU-s for MiniLM's 30k). ``max_length``: tokens read per document. ``ridge_alphas``: the L2
    strengths tried for the heads (the embeddings have unit length, so smaller than ``training.ridge_alphas``).

    Raises:
        ParamsError: a value out of range, or a pattern that is not a valid regex.
    """

    pca_dims: int | None = 256
    sif_coefficient: float | None = 1e-4
    token_remove_pattern: str | None = r"\[unused\d+\]"
    max_length: int = 512
    ridge_alphas: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)

    def __post_init__(self) -> None:
        if self.pca_dims is not None and self.pca_dims < 1:
            raise ParamsError(f"pca_dims: expected a positive integer or null (no PCA), got {self.pca_dims}")
        if self.sif_coefficient is not None and not 0 < self.sif_coefficient < 1:
            raise ParamsError(f"sif_coefficient: expected a value in (0, 1) or null, got {self.sif_coefficient}")
        if self.max_length < 1:
            raise ParamsError(f"max_length: expected a positive integer, got {self.max_length}")
        if not self.ridge_alphas or any(a <= 0 for a in self.ridge_alphas):
            raise ParamsError(f"ridge_alphas: expected one or more positive values, got {list(self.ridge_alphas)}")
        if self.token_remove_pattern is not None:
            try:
                re.compile(self.token_remove_pattern)
            except re.error as exc:
                raise ParamsError(
                    f"token_remove_pattern: {self.token_remove_pattern!r} is not a regex: {exc}"
                ) from None

    def distill_options(self) -> dict[str, Any]:
        """Keyword arguments of ``model2vec.distill.distill_from_model`` for these settings."""
        return {
            "pca_dims": self.pca_dims,
            "sif_coefficient": self.sif_coefficient,
            "token_remove_pattern": self.token_remove_pattern,
        }


def embed_texts(static: Any, texts: Sequence[str], max_length: int) -> np.ndarray:
    """Document embeddings ``(len(texts), static.dim)`` from a model2vec ``StaticModel``, float64, unit length
    (zero for a text without a known token), each text cut to ``max_length`` tokens. In this process:
    model2vec's own process pool would fight the filter's workers."""
    if not texts:
        return np.zeros((0, static.dim), dtype=np.float64)
    return np.asarray(static.encode(list(texts), max_length=max_length, use_multiprocessing=False), dtype=np.float64)


class Model2VecClassifier:
    """A model2vec ``StaticModel`` and a linear head per task (kind ``model2vec``).

    ``coef`` is ``[tasks, static.dim]``, ``intercept`` ``[tasks]``; :meth:`predict` gives scores ``(documents,
    tasks)`` in label units, within ``0 .. num_targets - 1``. ``ridge_alpha``: the L2 strength the heads were fitted
    with (a record; None when not known).
    """

    def __init__(
        self,
        task_names: Sequence[str],
        num_targets: Sequence[int],
        config: Model2VecConfig,
        static: Any,
        coef: np.ndarray,
        intercept: np.ndarray,
        ridge_alpha: float | None = None,
    ) -> None:
        self.task_names = list(task_names)
        self.num_targets = [int(k) for k in num_targets]
        self.config = config
        self.static = static
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.ridge_alpha = ridge_alpha
        expected = (len(self.task_names), static.dim)
        if self.coef.shape != expected or self.intercept.shape != (len(self.task_names),):
            raise ValueError(
                f"heads: coef {self.coef.shape} and intercept {self.intercept.shape} do not fit {len(self.task_names)} "
                f"task(s) on {static.dim}-dimensional embeddings (expected coef {expected})"
            )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Document embeddings of ``texts`` (:func:`embed_texts` with this model's ``max_length``)."""
        return embed_texts(self.static, texts, self.config.max_length)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of shape ``(len(texts), len(task_names))``, float64, clipped into each task's label range."""
        scores = self.embed(texts) @ self.coef.T + self.intercept
        return np.clip(scores, 0, np.asarray(self.num_targets, dtype=np.float64) - 1)

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        """Write ``static_model/`` (swapped in whole), ``heads.npz`` and :data:`CONFIG_NAME` (last) into ``folder``."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        static_dir = target / STATIC_FOLDER
        staging = target / f".{STATIC_FOLDER}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        self.static.save_pretrained(staging)
        shutil.rmtree(static_dir, ignore_errors=True)
        os.replace(staging, static_dir)
        with atomic_path(target / HEADS_NAME) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, coef=self.coef, intercept=self.intercept)
        write_classifier_config(
            target,
            KIND,
            self.task_names,
            self.num_targets,
            asdict(self.config),
            dims=int(self.static.dim),
            vocabulary=len(self.static.tokens),
            ridge_alpha=self.ridge_alpha,
        )

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> Model2VecClassifier:
        """Load a folder written by :meth:`save_pretrained` (no pickle is read, nothing is fetched).

        Raises:
            ValueError: the config is not of kind ``model2vec``, a file it needs is missing, or the heads do not fit
                the static model.
        """
        from model2vec import StaticModel

        source = Path(folder)
        meta = read_classifier_config(source, KIND)
        for name in (STATIC_FOLDER, HEADS_NAME):
            if not (source / name).exists():
                raise ValueError(f"{source / CONFIG_NAME}: {name} is missing from {source}")
        config = meta["config"]
        config = Model2VecConfig(**dict(config, ridge_alphas=tuple(config["ridge_alphas"])))
        static = StaticModel.from_pretrained(source / STATIC_FOLDER, force_download=False)
        with np.load(source / HEADS_NAME, allow_pickle=False) as arrays:
            coef, intercept = arrays["coef"], arrays["intercept"]
        return cls(meta["task_names"], meta["num_targets"], config, static, coef, intercept, meta.get("ridge_alpha"))
