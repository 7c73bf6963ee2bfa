"""Inverse-probability weights of a proxy-stratified sample weight the training loss, on both training paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from mlfilter.modeling import AnnotatorConfig, AnnotatorHeads
from mlfilter.records import RecordFormatError
from mlfilter.training.data import read_labeled
from mlfilter.training.run import train_annotator
from tests.training.conftest import DIGITS, EDUCATIONAL, sample_records, write_jsonl


@pytest.mark.parametrize("is_regression", [True, False])
def test_weighted_loss_by_hand(is_regression: bool) -> None:
    torch.manual_seed(0)
    config = AnnotatorConfig(task_names=["a", "b"], num_targets_per_task=[3, 2], is_regression=is_regression)
    heads = AnnotatorHeads(config, hidden_size=4)
    logits = torch.randn(4, 2 if is_regression else 5)
    labels = torch.tensor([[0.0, 1.0], [2.0, float("nan")], [1.0, 0.0], [2.0, 1.0]])
    weights = torch.tensor([1.0, 3.0, 0.5, 2.0])

    def per_document(task: int) -> torch.Tensor:
        if is_regression:
            return (logits[:, task] - labels[:, task]) ** 2
        part = logits[:, :3] if task == 0 else logits[:, 3:]
        classes = torch.nan_to_num(labels[:, task]).long()
        return torch.nn.functional.cross_entropy(part, classes, reduction="none")

    present_b = torch.tensor([True, False, True, True])
    expected = (
        (per_document(0) * weights).sum() / weights.sum()
        + (per_document(1)[present_b] * weights[present_b]).sum() / weights[present_b].sum()
    ) / 2
    assert heads.compute_loss(logits, labels, weights) == pytest.approx(expected.item(), rel=1e-5)
    ones = heads.compute_loss(logits, labels, torch.ones(4))
    assert heads.compute_loss(logits, labels) == pytest.approx(ones.item(), rel=1e-6)
    assert heads.compute_loss(logits, labels, weights) != pytest.approx(ones.item(), rel=1e-3)


def weighted_splits(tmp_path: Path) -> tuple[Path, Path]:
    """The 40 real documents with both tasks' labels; documents scored 3 or more weigh 8, the others 1."""
    records = [dict(r, weight=8.0 if r["scores"][0] >= 3 else 1.0) for r in sample_records()]
    return write_jsonl(tmp_path / "train.jsonl", records[:30]), write_jsonl(tmp_path / "val.jsonl", records[30:])


def test_read_labeled_keeps_weights_and_names_a_bad_one(tmp_path: Path) -> None:
    train_path, _ = weighted_splits(tmp_path)
    train = read_labeled(str(train_path), (EDUCATIONAL, DIGITS))
    expected = [8.0 if r["scores"][0] >= 3 else 1.0 for r in sample_records()[:30]]
    np.testing.assert_array_equal(train.weights, expected)
    assert read_labeled(str(tmp_path / "val.jsonl"), (EDUCATIONAL, DIGITS)).weights is not None
    plain = write_jsonl(tmp_path / "plain.jsonl", sample_records()[:5])
    assert read_labeled(str(plain), (EDUCATIONAL, DIGITS)).weights is None
    bad = [dict(r, weight=0) if i == 3 else r for i, r in enumerate(sample_records()[:5])]
    with pytest.raises(RecordFormatError, match=r"bad\.jsonl:4: field 'weight'"):
        read_labeled(str(write_jsonl(tmp_path / "bad.jsonl", bad)), (EDUCATIONAL, DIGITS))


def _predict(model_dir: Path, texts: list[str]) -> torch.Tensor:
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = AutoTokenizer.from_pretrained(model_dir)(
        texts, truncation=True, max_length=64, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        return model(**batch).scores


def test_weights_reach_the_loss_on_the_fast_path_and_through_the_trainer(tmp_path: Path, tiny_params) -> None:
    train_path, val_path = weighted_splits(tmp_path)
    tasks = (EDUCATIONAL, DIGITS)
    weighted_train, val = read_labeled(str(train_path), tasks), read_labeled(str(val_path), tasks)
    unweighted_train = read_labeled(str(write_jsonl(tmp_path / "plain.jsonl", sample_records()[:30])), tasks)
    runs = {}
    for name, train, fast in (
        ("fast", weighted_train, True),
        ("trainer", weighted_train, False),
        ("unweighted", unweighted_train, True),
    ):
        runs[name] = train_annotator(
            train,
            val,
            params=tiny_params(frozen_fast_path=fast, group_by_length=False),
            tasks=tasks,
            seed=7,
            output_dir=tmp_path / name,
            live_dir=tmp_path / f"live-{name}",
        )
    assert runs["fast"].path == "frozen_embeddings" and runs["trainer"].path == "trainer"
    fast, full, plain = (_predict(tmp_path / name, val.texts) for name in ("fast", "trainer", "unweighted"))
    assert torch.allclose(fast, full, atol=1e-4), (fast - full).abs().max()
    # Up-weighting the educational documents raises the predicted educational scores.
    assert fast[:, 0].mean() > plain[:, 0].mean() + 0.05
