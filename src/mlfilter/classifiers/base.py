"""The interface every non-encoder classifier implements, and loading a saved one by its kind."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlfilter.atomic import write_json

#: The file in a model folder that names a non-encoder classifier's kind (``{"kind": "fasttext", ...}``).
CONFIG_NAME = "mlfilter_classifier.json"
#: The kind of a transformers :class:`~mlfilter.modeling.AnnotatorModel` folder (no :data:`CONFIG_NAME`).
ENCODER = "encoder"
#: Kind → ``module:Class`` implementing :class:`TextClassifier`, imported only when that kind is used.
IMPLEMENTATIONS = {
    "fasttext": "mlfilter.classifiers.fasttext_model:FastTextClassifier",
    "tfidf": "mlfilter.classifiers.tfidf:TfidfClassifier",
    "model2vec": "mlfilter.classifiers.model2vec_model:Model2VecClassifier",
}


class TextClassifier(Protocol):
    """A trained classifier with one score per task, in label units (``0 .. num_targets - 1``)."""

    task_names: list[str]
    num_targets: list[int]

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of shape ``(len(texts), len(task_names))``, float64; the expected label per task."""
        ...

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        """Write the model and :data:`CONFIG_NAME` into ``folder`` (created if missing)."""
        ...


def classifier_kind(folder: str | os.PathLike[str]) -> str:
    """The kind of the model saved in ``folder``: a key of :data:`IMPLEMENTATIONS`, or :data:`ENCODER`.

    Raises:
        ValueError: the folder's :data:`CONFIG_NAME` names no known kind.
    """
    config = Path(folder) / CONFIG_NAME
    if not config.is_file():
        return ENCODER
    kind = json.loads(config.read_text(encoding="utf-8")).get("kind")
    if kind not in IMPLEMENTATIONS:
        raise ValueError(f"{config}: kind {kind!r} is not one of {sorted(IMPLEMENTATIONS)}")
    return kind


def read_classifier_config(folder: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """The :data:`CONFIG_NAME` of a saved classifier of ``kind``, as a dict.

    Raises:
        ValueError: the folder's config names another kind.
    """
    path = Path(folder) / CONFIG_NAME
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if config.get("kind") != kind:
        raise ValueError(f"{path}: kind {config.get('kind')!r}, expected {kind!r}")
    return config


def write_classifier_config(
    folder: str | os.PathLike[str],
    kind: str,
    task_names: Sequence[str],
    num_targets: Sequence[int],
    settings: dict[str, Any],
    **extra: Any,
) -> None:
    """Write a saved classifier's :data:`CONFIG_NAME` (strict JSON, atomically): its ``kind``, tasks, ``num_targets``
    per task, the training ``settings`` (under ``config``) and any kind-specific ``extra`` keys. Written last by
    every ``save_pretrained``, so a folder with this file holds a whole model."""
    write_json(
        Path(folder) / CONFIG_NAME,
        {"kind": kind, "task_names": list(task_names), "num_targets": list(num_targets), "config": settings, **extra},
    )


def store_calibration(folder: str | os.PathLike[str], cuts: Sequence[float | None], method: str) -> None:
    """Record the calibrated cut per task (raw score, None where val could not calibrate it) and the method that
    chose them (:mod:`mlfilter.training.calibration`) in the :data:`CONFIG_NAME` of a saved classifier.

    Raises:
        ValueError: the folder holds no classifier config, or ``cuts`` has not one value per task.
    """
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{folder}: no {CONFIG_NAME} to record the calibration in")
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if len(cuts) != len(config["task_names"]):
        raise ValueError(f"{path}: {len(cuts)} calibrated cut(s) for {len(config['task_names'])} task(s)")
    config.update(calibrated_thresholds=[None if c is None else float(c) for c in cuts], calibration_method=method)
    write_json(path, config)


def calibrated_cuts(folder: str | os.PathLike[str]) -> list[float | None] | None:
    """The calibrated cut per task that training stored in a classifier's :data:`CONFIG_NAME` (None: none stored,
    e.g. a model trained before these kinds were calibrated)."""
    config = json.loads((Path(folder) / CONFIG_NAME).read_text(encoding="utf-8"))
    return config.get("calibrated_thresholds")


def classifier_class(kind: str) -> type:
    """The class implementing ``kind`` (a key of :data:`IMPLEMENTATIONS`), imported now.

    Raises:
        KeyError: ``kind`` is not a key of :data:`IMPLEMENTATIONS`.
    """
    module_name, class_name = IMPLEMENTATIONS[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_classifier(folder: str | os.PathLike[str]) -> TextClassifier:
    """Load the non-encoder classifier saved in ``folder`` by its kind.

    Raises:
        ValueError: ``folder`` holds an encoder model (load it with ``AnnotatorModel``) or an unknown kind.
    """
    kind = classifier_kind(folder)
    if kind == ENCODER:
        raise ValueError(f"{folder}: not a {CONFIG_NAME} classifier folder; load it as an AnnotatorModel")
    return classifier_class(kind).from_pretrained(folder)
