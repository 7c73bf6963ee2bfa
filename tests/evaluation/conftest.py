"""Fixtures for the evaluation tests: tasks, annotation folders in every format, a small saved model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlfilter.params import TaskParams

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFILTER_PROGRESS", "0")

EDU = TaskParams(name="educational", prompt="prompts/educational_v1.yaml", num_targets=6, threshold=3)
TOXIC = TaskParams(name="toxic", prompt="prompts/toxic_v1.yaml", num_targets=3, threshold=1)


@pytest.fixture
def one_task() -> tuple[TaskParams, ...]:
    return (EDU,)


@pytest.fixture
def two_tasks() -> tuple[TaskParams, ...]:
    return (EDU, TOXIC)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the trained model: the packaged MiniLM with fresh regression heads for two tasks,
    saved with its tokenizer the way the train stage saves ``models/annotator/final``."""
    import torch
    from transformers import AutoTokenizer

    from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
    from mlfilter.modeling import AnnotatorModel

    torch.manual_seed(0)
    encoder = resolve_model(EMBEDDED_ENCODER).path
    model = AnnotatorModel.from_encoder(
        encoder, task_names=["toxic", "educational"], num_targets_per_task=[3, 6], is_regression=True
    )
    folder = tmp_path_factory.mktemp("model") / "final"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(folder)
    return folder
