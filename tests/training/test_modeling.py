"""AnnotatorModel: heads, masked losses, label priors, a frozen encoder, save → from_pretrained."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
from mlfilter.modeling import AnnotatorModel
from tests.training.conftest import sample_records

ENCODER = resolve_model(EMBEDDED_ENCODER).path


def _model(**kwargs: object) -> AnnotatorModel:
    torch.manual_seed(0)
    config = {"task_names": ["educational", "digits"], "num_targets_per_task": [6, 3], "pooling": "mean"}
    config.update(kwargs)
    return AnnotatorModel.from_encoder(ENCODER, **config)


@functools.cache
def _batch() -> dict[str, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(ENCODER)
    texts = [r["text"] for r in sample_records()[:4]]
    return dict(tokenizer(texts, truncation=True, max_length=48, padding=True, return_tensors="pt"))


@pytest.mark.parametrize(
    ("is_regression", "head_hidden_size"), [(True, 0), (False, 32)], ids=["linear-regression", "mlp-classification"]
)
def test_save_and_from_pretrained_give_identical_predictions(
    tmp_path: Path, is_regression: bool, head_hidden_size: int
) -> None:
    model = _model(is_regression=is_regression, head_hidden_size=head_hidden_size, classifier_dropout=0.1).eval()
    batch = _batch()
    with torch.no_grad():
        before = model(**batch)
    model.save_pretrained(tmp_path / "saved")
    files = sorted(p.name for p in (tmp_path / "saved").iterdir())
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    for loader in (AnnotatorModel, AutoModel):
        loaded = loader.from_pretrained(tmp_path / "saved").eval()
        assert isinstance(loaded, AnnotatorModel)
        with torch.no_grad():
            after = loaded(**batch)
        assert torch.equal(before.scores, after.scores)
        assert torch.equal(before.logits, after.logits)
    assert before.scores.shape == (4, 2)
    assert before.logits.shape == (4, 2 if is_regression else 9)


def test_classification_scores_are_expected_labels() -> None:
    model = _model(is_regression=False).eval()
    with torch.no_grad():
        output = model(**_batch())
    probabilities = output.logits[:, :6].softmax(-1)
    assert torch.allclose(output.scores[:, 0], (probabilities * torch.arange(6.0)).sum(-1), atol=1e-6)
    assert ((output.scores[:, 1] >= 0) & (output.scores[:, 1] <= 2)).all()


@pytest.mark.parametrize("is_regression", [True, False])
def test_loss_masks_missing_labels(is_regression: bool) -> None:
    model = _model(is_regression=is_regression).eval()
    embeddings = torch.randn(4, model.encoder.config.hidden_size)
    labels = torch.tensor([[1.0, math.nan], [3.0, 2.0], [math.nan, 0.0], [5.0, 1.0]])
    loss = model.forward_embeddings(embeddings, labels).loss
    first = model.forward_embeddings(embeddings[[0, 1, 3]], torch.tensor([[1.0, 0], [3.0, 0], [5.0, 0]])).logits
    second = model.forward_embeddings(embeddings[[1, 2, 3]], torch.tensor([[0, 2.0], [0, 0.0], [0, 1.0]])).logits
    if is_regression:
        expected = (
            torch.nn.functional.mse_loss(first[:, 0], torch.tensor([1.0, 3.0, 5.0]))
            + torch.nn.functional.mse_loss(second[:, 1], torch.tensor([2.0, 0.0, 1.0]))
        ) / 2
    else:
        expected = (
            torch.nn.functional.cross_entropy(first[:, :6], torch.tensor([1, 3, 5]))
            + torch.nn.functional.cross_entropy(second[:, 6:], torch.tensor([2, 0, 1]))
        ) / 2
    assert torch.allclose(loss, expected, atol=1e-6)
    nothing = model.forward_embeddings(embeddings, torch.full((4, 2), math.nan)).loss
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_label_prior_initialises_the_heads() -> None:
    labels = torch.tensor([[1.0, 0.0], [1.0, math.nan], [3.0, 2.0], [5.0, 2.0]])
    regression = _model(is_regression=True)
    regression.heads.init_from_label_prior(labels)
    assert regression.heads.tasks[0].layers.bias.item() == pytest.approx(2.5)
    assert regression.heads.tasks[1].layers.bias.item() == pytest.approx(4 / 3)
    classification = _model(is_regression=False, head_hidden_size=16)
    classification.heads.init_from_label_prior(labels)
    prior = classification.heads.tasks[0].layers[-1].bias.softmax(-1)
    expected = torch.tensor([1.0, 3.0, 1.0, 2.0, 1.0, 2.0]) / 10
    assert torch.allclose(prior, expected, atol=1e-6)


def test_frozen_encoder_stays_in_eval_mode_and_gets_no_gradients() -> None:
    model = _model()
    model.freeze_encoder()
    model.train()
    assert not model.encoder.training and model.heads.training
    output = model(**_batch(), labels=torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [0.0, 0.0]]))
    output.loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.heads.parameters())


def _tiny_encoder(tmp_path: Path, kind: str) -> str:
    """A randomly initialised 6-layer encoder saved to a folder (Llama: a final norm on the last state)."""
    from transformers import BertConfig, LlamaConfig

    torch.manual_seed(0)
    common = {"hidden_size": 32, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 64}
    config = (
        LlamaConfig(vocab_size=100, num_key_value_heads=2, **common)
        if kind == "llama"
        else BertConfig(vocab_size=100, **common)
    )
    AutoModel.from_config(config).save_pretrained(tmp_path / kind)
    return str(tmp_path / kind)


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_layers_above_the_deepest_pooled_state_are_dropped_with_identical_embeddings(tmp_path: Path, kind: str) -> None:
    folder = _tiny_encoder(tmp_path, kind)
    ids = torch.randint(3, 100, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    full = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        states = full(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    weights = mask.unsqueeze(-1).float()
    expected = torch.cat([(states[i] * weights).sum(1) / weights.sum(1) for i in (1, 3)], dim=-1)

    model = AnnotatorModel.from_encoder(folder, pooling="mean", pooling_layers=[1, -4]).eval()
    assert model.encoder.config.num_hidden_layers == 4, "state 3 needs 3 layers, plus the one whose input it is"
    assert model.config.pooling_layers == [1, 3] and model.config.encoder["num_hidden_layers"] == 4
    with torch.no_grad():
        torch.testing.assert_close(model.embed(ids, mask), expected)
    model.save_pretrained(tmp_path / "saved")
    reloaded = AnnotatorModel.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded.embed(ids, mask), expected)

    kept = AnnotatorModel.from_encoder(folder, pooling="mean", pooling_layers=[2, -1])
    assert kept.encoder.config.num_hidden_layers == 6 and kept.config.pooling_layers == [2, -1], "last state pooled"
