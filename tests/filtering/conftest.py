"""Fixtures for the filter tests: a saved stand-in model, real documents, corpora split into shards."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mlfilter.filtering.params import FilterParams, KeepParams, ScoringParams
from mlfilter.records import RecordWriter, iter_records

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFILTER_PROGRESS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).parent / "data"
TASKS = ["educational", "style"]
NUM_TARGETS = [6, 3]
#: Short windows keep the tests fast on two cores while still cutting most documents.
TEST_SCORING = ScoringParams(max_length=96, device="cpu", dtype="float32", window=16)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for ``models/annotator/final``: the packaged MiniLM with two classification heads whose
    weights are drawn wide enough that scores spread over the label range, saved with its tokenizer."""
    import torch
    from transformers import AutoTokenizer

    from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
    from mlfilter.modeling import AnnotatorModel

    torch.manual_seed(0)
    encoder = resolve_model(EMBEDDED_ENCODER).path
    model = AnnotatorModel.from_encoder(
        encoder, task_names=TASKS, num_targets_per_task=NUM_TARGETS, is_regression=False
    )
    with torch.no_grad():
        for layer in model.heads.modules():
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=3.0)
    folder = tmp_path_factory.mktemp("model") / "final"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def loaded(model_dir: Path) -> tuple[Any, Any]:
    """The stand-in model and tokenizer, loaded once."""
    from mlfilter.filtering.engine import load_model

    return load_model(str(model_dir), "cpu", "float32")


@pytest.fixture(scope="session")
def documents() -> list[dict[str, Any]]:
    """46 real documents (English, German, Spanish) of varied lengths."""
    with open(DATA / "documents.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_shards(folder: Path, documents: Sequence[dict[str, Any]], suffixes: Sequence[str]) -> list[Path]:
    """Split documents into consecutive shards ``part-0000N<suffix>`` (one per suffix)."""
    size = -(-len(documents) // len(suffixes))
    paths = []
    for i, suffix in enumerate(suffixes):
        path = folder / f"part-{i:05d}{suffix}"
        with RecordWriter(path) as writer:
            writer.write_many(documents[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def filter_params(corpus: Path | str, model_dir: Path, **overrides: Any) -> FilterParams:
    """Filter params for a test corpus: the test scoring options, keep-everything unless overridden."""
    base = FilterParams(inputs=(str(corpus),), model=str(model_dir), scoring=TEST_SCORING, keep=KeepParams(rule="all"))
    return dataclasses.replace(base, **overrides)


def read_folder(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Records of every record file below ``folder``, by relative name."""
    return {
        str(path.relative_to(folder)): [record for _, record in iter_records(str(path))]
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith(("_", "."))
    }


def file_bytes(folder: Path) -> dict[str, bytes]:
    """Content of every file below ``folder`` except completion markers (bookkeeping, not output)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(".done")
    }
