"""A character n-gram TF-IDF classifier: one ridge regression (or logistic regression) per task.

Text → TF-IDF over character n-grams inside word boundaries (scikit-learn ``TfidfVectorizer(analyzer="char_wb")``,
sublinear term frequency, L2-normalised rows), then a linear model per task on the documents labelled for it.
Character n-grams need no tokenizer and no language model, so the same model works in every language; it is the
baseline every evaluation reports (Joulin et al. 2017 and the FineWeb-Edu paper use such linear text models as
the cheap reference).

Saving uses no pickle: the folder holds :data:`~mlfilter.classifiers.base.CONFIG_NAME` (kind ``tfidf``, tasks,
vectorizer settings), ``vocabulary.json`` (the n-grams in feature order) and ``weights.npz`` (IDF, coefficients,
intercepts, read with ``allow_pickle=False``), so loading a model runs no code from the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge

from mlfilter.atomic import atomic_open, atomic_path
from mlfilter.classifiers.base import read_classifier_config, write_classifier_config

KIND = "tfidf"
VOCABULARY_NAME = "vocabulary.json"
WEIGHTS_NAME = "weights.npz"

Objective = Literal["regression", "classification"]


@dataclass(frozen=True)
class TfidfConfig:
    """Settings of the vectorizer and the per-task linear models.

    ``ngram_min``/``ngram_max``: character n-gram lengths (``char_wb``: n-grams inside words padded with spaces).
    ``max_features``: the most frequent n-grams kept. ``min_df``: n-grams in fewer training documents are dropped.
    ``alpha``: L2 strength (ridge ``alpha``; logistic ``C = 1 / alpha``).
    ``objective``: ``regression`` (ridge on the label value) or ``classification`` (multinomial logistic
    regression; the score is the expected label under its probabilities).
    ``max_chars``: texts are cut to their first ``max_chars`` characters (0: whole texts), as an encoder reads
    its first ``max_length`` tokens; the n-gram analyzer is pure Python, so this bounds its time per document.
    """

    ngram_min: int = 1
    ngram_max: int = 4
    max_features: int = 200_000
    min_df: int = 2
    alpha: float = 1.0
    objective: Objective = "regression"
    max_chars: int = 4000

    def __post_init__(self) -> None:
        if not 1 <= self.ngram_min <= self.ngram_max:
            raise ValueError(f"ngram_min/ngram_max: expected 1 <= min <= max, got {self.ngram_min}, {self.ngram_max}")
        if self.max_features < 1 or self.min_df < 1:
            raise ValueError(f"max_features and min_df must be >= 1, got {self.max_features}, {self.min_df}")
        if self.max_chars < 0:
            raise ValueError(f"max_chars: expected 0 (whole texts) or more, got {self.max_chars}")
        if self.alpha <= 0:
            raise ValueError(f"alpha: expected > 0, got {self.alpha}")
        if self.objective not in ("regression", "classification"):
            raise ValueError(f"objective: expected regression or classification, got {self.objective!r}")

    def cut(self, texts: Sequence[str]) -> list[str]:
        """The texts as the vectorizer reads them: their first ``max_chars`` characters."""
        return [text[: self.max_chars] for text in texts] if self.max_chars else list(texts)

    def vectorizer(self, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
        """The scikit-learn vectorizer of these settings (with a fixed ``vocabulary`` when loading)."""
        return TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(self.ngram_min, self.ngram_max),
            lowercase=True,
            sublinear_tf=True,
            max_features=self.max_features,
            min_df=self.min_df,
            dtype=np.float32,
            vocabulary=vocabulary,
        )


@dataclass
class TaskModel:
    """One task's linear model: ``scores = X @ coef.T + intercept``; ``classes`` are the labels of the
    logistic model's rows (None for ridge, whose ``coef`` has one row)."""

    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray | None


class TfidfClassifier:
    """Character n-gram TF-IDF features and a linear model per task (kind ``tfidf``).

    ``predict`` returns scores of shape ``(documents, tasks)`` in label units, clipped into
    ``0 .. num_targets - 1``.
    """

    def __init__(
        self,
        task_names: Sequence[str],
        num_targets: Sequence[int],
        config: TfidfConfig,
        vectorizer: TfidfVectorizer,
        models: Sequence[TaskModel],
    ) -> None:
        self.task_names = list(task_names)
        self.num_targets = list(num_targets)
        self.config = config
        self.vectorizer = vectorizer
        self.models = list(models)

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: np.ndarray,
        *,
        task_names: Sequence[str],
        num_targets: Sequence[int],
        weights: np.ndarray | None = None,
        config: TfidfConfig | None = None,
    ) -> TfidfClassifier:
        """Fit on ``texts`` with ``labels[document, task]`` (NaN: no label for that task, left out of its model).

        ``weights`` (shape ``(documents,)``, > 0): per-document weights of the loss, e.g. inverse inclusion
        probabilities of a proxy-stratified sample. The IDF is fitted on every text.

        Raises:
            ValueError: shapes disagree, a weight is not positive, or a task has fewer than two labelled documents
                or (classification) a single label.
        """
        config = config or TfidfConfig()
        labels = np.asarray(labels, dtype=np.float64).reshape(len(texts), -1)
        if labels.shape[1] != len(task_names) or len(num_targets) != len(task_names):
            raise ValueError(
                f"labels have {labels.shape[1]} task column(s); task_names {len(task_names)}, "
                f"num_targets {len(num_targets)}"
            )
        sample_weight = np.ones(len(texts)) if weights is None else np.asarray(weights, dtype=np.float64)
        if sample_weight.shape != (len(texts),) or not np.all(sample_weight > 0):
            raise ValueError(f"weights: expected {len(texts)} positive values, got shape {sample_weight.shape}")
        vectorizer = config.vectorizer()
        features = vectorizer.fit_transform(config.cut(texts))
        models = []
        for position, name in enumerate(task_names):
            labelled = ~np.isnan(labels[:, position])
            if labelled.sum() < 2:
                raise ValueError(f"task {name!r}: {int(labelled.sum())} labelled document(s); at least 2 are needed")
            x, y, w = features[labelled], labels[labelled, position], sample_weight[labelled]
            models.append(_fit_task(name, x, y, w, config))
        return cls(task_names, num_targets, config, vectorizer, models)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of shape ``(len(texts), len(task_names))``, float64, clipped into each task's label range."""
        features = self.vectorizer.transform(self.config.cut(texts))
        columns = []
        for model, k in zip(self.models, self.num_targets, strict=True):
            raw = np.asarray(features @ model.coef.T, dtype=np.float64) + model.intercept
            if model.classes is None:
                score = raw[:, 0]
            else:
                raw -= raw.max(axis=1, keepdims=True)
                probabilities = np.exp(raw)
                probabilities /= probabilities.sum(axis=1, keepdims=True)
                score = probabilities @ model.classes
            columns.append(np.clip(score, 0, k - 1))
        return np.stack(columns, axis=1) if columns else np.zeros((len(texts), 0))

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        """Write ``vocabulary.json``, ``weights.npz`` and :data:`CONFIG_NAME` (last) into ``folder``."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        vocabulary = self.vectorizer.vocabulary_
        terms = sorted(vocabulary, key=vocabulary.__getitem__)
        with atomic_open(target / VOCABULARY_NAME, "w", encoding="utf-8") as handle:
            json.dump(terms, handle, ensure_ascii=False)
        arrays: dict[str, np.ndarray] = {"idf": np.asarray(self.vectorizer.idf_, dtype=np.float64)}
        for position, model in enumerate(self.models):
            arrays[f"coef_{position}"] = model.coef
            arrays[f"intercept_{position}"] = model.intercept
            if model.classes is not None:
                arrays[f"classes_{position}"] = model.classes
        with atomic_path(target / WEIGHTS_NAME) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        write_classifier_config(
            target, KIND, self.task_names, self.num_targets, asdict(self.config), features=len(terms)
        )

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> TfidfClassifier:
        """Load a folder written by :meth:`save_pretrained` (no pickle is read).

        Raises:
            ValueError: the config is not of kind ``tfidf`` or the files disagree with it.
        """
        source = Path(folder)
        meta = read_classifier_config(source, KIND)
        config = TfidfConfig(**meta["config"])
        terms = json.loads((source / VOCABULARY_NAME).read_text(encoding="utf-8"))
        with np.load(source / WEIGHTS_NAME, allow_pickle=False) as arrays:
            idf = arrays["idf"]
            models = [
                TaskModel(
                    arrays[f"coef_{i}"],
                    arrays[f"intercept_{i}"],
                    arrays.get(f"classes_{i}"),
                )
                for i in range(len(meta["task_names"]))
            ]
        if len(terms) != len(idf) or any(m.coef.shape[1] != len(terms) for m in models):
            raise ValueError(f"{source}: {VOCABULARY_NAME} and {WEIGHTS_NAME} disagree on the number of features")
        vectorizer = config.vectorizer({term: i for i, term in enumerate(terms)})
        vectorizer.idf_ = idf
        return cls(meta["task_names"], meta["num_targets"], config, vectorizer, models)


def _fit_task(name: str, x: Any, y: np.ndarray, weights: np.ndarray, config: TfidfConfig) -> TaskModel:
    """Ridge on the label value, or multinomial logistic regression on the label classes."""
    if config.objective == "regression":
        ridge = Ridge(alpha=config.alpha).fit(x, y, sample_weight=weights)
        return TaskModel(np.atleast_2d(ridge.coef_).astype(np.float64), np.atleast_1d(ridge.intercept_), None)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"task {name!r}: every labelled document has label {classes[0]:g}; a classifier needs two")
    logistic = LogisticRegression(C=1.0 / config.alpha, max_iter=1000).fit(x, y, sample_weight=weights)
    coef, intercept = logistic.coef_, logistic.intercept_
    if len(classes) == 2:
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return TaskModel(coef.astype(np.float64), intercept.astype(np.float64), logistic.classes_.astype(np.float64))
