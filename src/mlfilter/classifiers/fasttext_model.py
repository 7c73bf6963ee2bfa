"""A fastText classifier (kind ``fasttext``): word and word n-gram embeddings averaged into a linear model.

fastText (Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification", from the ``fasttext`` package on
PyPI) is the cheap classifier of the field: FineWeb-Edu's and DCLM's fastText filters score thousands of
documents per second on one CPU core. Each task gets its own model(s), trained on the documents labelled for it:

- ``classification``: one model over the classes ``0 .. K-1`` (fractional labels rounded with
  :func:`mlfilter.scores.to_int_score`); the score is the expected label ``sum_k k * P(k)``.
- ``regression`` (ordered bins): ``K - 1`` binary models, one per cut ``k = 1 .. K-1``, each estimating
  ``P(label >= k)`` (``>=`` by :func:`mlfilter.scores.at_or_above`); the score is ``sum_k P(label >= k)``, the
  expected label of the cumulative ("ordinal binary decomposition") model of Frank & Hall 2001, which keeps the
  order of the labels that plain classification ignores.

Text is lower-cased and split on white space (fastText's own tokenizer then sees one line per document).
Saving writes one fastText ``.bin`` per model and :data:`~mlfilter.classifiers.base.CONFIG_NAME`; no pickle.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mlfilter.atomic import atomic_path
from mlfilter.classifiers.base import CONFIG_NAME, read_classifier_config, write_classifier_config
from mlfilter.scores import at_or_above, to_int_score

KIND = "fasttext"
#: Attempts at the configured learning rate, then at successively halved rates, when fastText stops with NaN.
SAME_RATE_ATTEMPTS = 3
HALVINGS = 2
log = logging.getLogger(__name__)
LABEL_PREFIX = "__label__"

Objective = Literal["regression", "classification"]


@dataclass(frozen=True)
class FastTextConfig:
    """fastText training settings (names as in ``fasttext.train_supervised``).

    ``word_ngrams``: longest word n-gram used as a feature; ``bucket``: hash buckets for the n-grams (the model
    file holds ``(words + bucket) * dim`` float32s); ``threads`` 1 keeps training deterministic for a ``seed``.
    """

    objective: Objective = "regression"
    dim: int = 64
    word_ngrams: int = 2
    epoch: int = 25
    lr: float = 0.5
    min_count: int = 2
    bucket: int = 200_000
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.objective not in ("regression", "classification"):
            raise ValueError(f"objective: expected 'regression' or 'classification', got {self.objective!r}")
        for name in ("dim", "word_ngrams", "epoch", "min_count", "bucket", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr: expected a positive number, got {self.lr}")


def normalize(text: str) -> str:
    """One line of lower-cased, single-space-separated words: what every model here is trained and run on."""
    return " ".join(text.lower().split())


def _train(fasttext: Any, path: str, config: FastTextConfig) -> Any:
    """``fasttext.train_supervised`` on ``path`` in a fresh process (``spawn``), loaded back here.

    In a process that has run torch models, or one that already trained fastText models, its training stopped
    with "Encountered NaN" on every attempt where the same data and settings train cleanly in a fresh interpreter
    (seen in the test suite); a fresh process per training gives each the same clean state (~1 s each).
    It is retried when it stops with NaN: first at the
    configured learning rate, then halved (SGD can diverge on small data at high rates).

    Raises:
        ValueError: training still stops with NaN after every attempt.
    """
    rates = [config.lr] * SAME_RATE_ATTEMPTS + [config.lr / 2**i for i in range(1, HALVINGS + 1)]
    output = f"{path}.bin"
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for lr in rates:
            if pool.submit(_train_to_file, path, output, config, lr).result():
                return fasttext.load_model(output)
            log.warning("fastText stopped with NaN at learning rate %g; retrying", lr)
    raise ValueError(f"fastText training stopped with NaN {len(rates)} times (last learning rate {rates[-1]:g})")


def _train_to_file(path: str, output: str, config: FastTextConfig, lr: float) -> bool:
    """In the training process: train on ``path`` and save to ``output``; False when fastText stopped with NaN."""
    import fasttext

    try:
        model = fasttext.train_supervised(
            input=path,
            dim=config.dim,
            wordNgrams=config.word_ngrams,
            epoch=config.epoch,
            lr=lr,
            minCount=config.min_count,
            bucket=config.bucket,
            seed=config.seed,
            thread=config.threads,
            verbose=0,
        )
    except RuntimeError as exc:
        if "NaN" not in str(exc):
            raise
        return False
    model.save_model(output)
    return True


def _label_values(labels: Sequence[str]) -> np.ndarray:
    return np.asarray([int(label.removeprefix(LABEL_PREFIX)) for label in labels], dtype=np.int64)


class FastTextClassifier:
    """fastText models per task (kind ``fasttext``); :meth:`predict` gives scores ``(documents, tasks)`` in label
    units, within ``0 .. num_targets - 1``."""

    def __init__(
        self, task_names: Sequence[str], num_targets: Sequence[int], config: FastTextConfig, models: list[list[Any]]
    ) -> None:
        self.task_names = list(task_names)
        self.num_targets = [int(k) for k in num_targets]
        self.config = config
        self.models = models

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: np.ndarray,
        *,
        task_names: Sequence[str],
        num_targets: Sequence[int],
        config: FastTextConfig | None = None,
    ) -> FastTextClassifier:
        """Fit on ``texts`` with ``labels[document, task]`` (NaN: no label for that task, left out of its models).

        Raises:
            ValueError: shapes disagree, or a task has no labelled document or a single label only.
        """
        import fasttext

        config = config or FastTextConfig()
        labels = np.asarray(labels, dtype=np.float64).reshape(len(texts), -1)
        if labels.shape[1] != len(task_names) or len(num_targets) != len(task_names):
            raise ValueError(
                f"labels have {labels.shape[1]} task column(s); task_names {len(task_names)}, "
                f"num_targets {len(num_targets)}"
            )
        lines = [normalize(text) for text in texts]
        models = []
        with tempfile.TemporaryDirectory(prefix="mlfilter-fasttext-") as scratch:
            for position, (name, k) in enumerate(zip(task_names, num_targets, strict=True)):
                labelled = ~np.isnan(labels[:, position])
                classes = to_int_score(labels[labelled, position], k).astype(np.int64)
                if len(np.unique(classes)) < 2:
                    raise ValueError(
                        f"task {name!r}: {int(labelled.sum())} labelled document(s) with label(s) "
                        f"{sorted(set(classes.tolist()))}; fastText needs at least two different labels"
                    )
                docs = [line for line, keep in zip(lines, labelled, strict=True) if keep]
                if config.objective == "classification":
                    targets = [classes]
                else:
                    targets = [at_or_above(labels[labelled, position], cut).astype(np.int64) for cut in range(1, k)]
                task_models = []
                for target in targets:
                    path = Path(scratch) / f"{position}-{len(task_models)}.txt"
                    path.write_text(
                        "".join(f"{LABEL_PREFIX}{y} {line}\n" for y, line in zip(target, docs, strict=True)),
                        encoding="utf-8",
                    )
                    task_models.append(_train(fasttext, str(path), config))
                models.append(task_models)
        return cls(task_names, num_targets, config, models)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of shape ``(len(texts), len(task_names))``, float64: the expected label of each task."""
        lines = [normalize(text) for text in texts]
        scores = np.zeros((len(lines), len(self.task_names)), dtype=np.float64)
        if not lines:
            return scores
        for position, (task_models, k) in enumerate(zip(self.models, self.num_targets, strict=True)):
            for model in task_models:
                predicted, probabilities = model.predict(lines, k=-1)
                for row, (names, values) in enumerate(zip(predicted, probabilities, strict=True)):
                    classes = _label_values(names)
                    if self.config.objective == "classification":
                        scores[row, position] = float(np.dot(classes, values))
                    else:
                        scores[row, position] += float(values[classes == 1].sum())
            np.clip(scores[:, position], 0, k - 1, out=scores[:, position])
        return scores

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        """Write one ``task<i>-<j>.bin`` per fastText model, then :data:`CONFIG_NAME`, into ``folder``."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        files = []
        for position, task_models in enumerate(self.models):
            names = []
            for index, model in enumerate(task_models):
                name = f"task{position}-{index}.bin"
                with atomic_path(target / name) as tmp:
                    model.save_model(str(tmp))
                names.append(name)
            files.append(names)
        write_classifier_config(target, KIND, self.task_names, self.num_targets, asdict(self.config), files=files)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> FastTextClassifier:
        """Load a folder written by :meth:`save_pretrained`.

        Raises:
            ValueError: the config is not of kind ``fasttext``, or a model file it names is missing.
        """
        import fasttext

        source = Path(folder)
        meta = read_classifier_config(source, KIND)
        models = []
        for names in meta["files"]:
            missing = [name for name in names if not (source / name).is_file()]
            if missing:
                raise ValueError(f"{source / CONFIG_NAME}: model file {missing[0]} is missing from {source}")
            models.append([fasttext.load_model(str(source / name)) for name in names])
        return cls(meta["task_names"], meta["num_targets"], FastTextConfig(**meta["config"]), models)
