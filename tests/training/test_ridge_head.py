"""Pooling several hidden layers, and linear heads fitted by ridge regression with the L2 strength chosen on val."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge

from mlfilter.classifiers.tfidf import TfidfClassifier
from mlfilter.errors import MlfilterError
from mlfilter.export import EXPORT_FOLDER
from mlfilter.filtering.engine import load_model, score_texts
from mlfilter.modeling import AnnotatorModel
from mlfilter.params import ParamsError
from mlfilter.training.calibration import calibrate_cut
from mlfilter.training.data import read_labeled
from mlfilter.training.params import TrainingParams
from mlfilter.training.ridge_head import fit_ridge_heads
from mlfilter.training.run import load_base, train_from_files
from tests.training.conftest import EDUCATIONAL, sample_records


def test_pooled_layers_are_the_concatenated_mean_pools_of_those_hidden_states() -> None:
    model, tokenizer = load_base(TrainingParams(pooling_layers=(-3, -1)), (EDUCATIONAL,))
    model.eval()
    texts = [r["text"] for r in sample_records()[:3]]
    batch = tokenizer(texts, truncation=True, max_length=48, padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = model.embed(batch["input_ids"], batch["attention_mask"])
        states = model.encoder(**batch, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.cat([(states[i] * mask).sum(1) / mask.sum(1) for i in (-3, -1)], dim=-1)
    assert model.embedding_size == 2 * model.encoder.config.hidden_size == pooled.shape[1]
    torch.testing.assert_close(pooled, expected)
    assert not torch.allclose(pooled[:, :384], pooled[:, 384:]), "two different layers"


def test_a_pooling_layer_the_encoder_lacks_is_named() -> None:
    with pytest.raises(MlfilterError, match=r"training.pooling_layers: 9 is not a hidden state .* has 7"):
        load_base(TrainingParams(pooling_layers=(9,)), (EDUCATIONAL,))


def test_ridge_alpha_is_the_best_on_val_and_the_heads_reproduce_that_ridge() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 384)).astype(np.float32)
    truth = x[:, :5].sum(axis=1)
    labels = np.clip(np.round(truth / 2 + 2.5 + rng.normal(scale=0.8, size=120)), 0, 5)[:, None]
    model, _ = load_base(TrainingParams(), (EDUCATIONAL,))
    alphas = (0.01, 10.0, 1000.0, 1e6)
    fit = fit_ridge_heads(
        model,
        x[:80],
        labels[:80],
        x[80:],
        labels[80:],
        tasks=(EDUCATIONAL,),
        alphas=alphas,
        metric="spearman_mean",
        higher_is_better=True,
    )
    brute = {
        a: spearmanr(Ridge(alpha=a).fit(x[:80], labels[:80, 0]).predict(x[80:]), labels[80:, 0])[0] for a in alphas
    }
    assert fit.alpha == max(brute, key=brute.get)
    assert fit.tried == {f"{a:g}": pytest.approx(v) for a, v in brute.items()}
    expected = Ridge(alpha=fit.alpha).fit(x[:80], labels[:80, 0]).predict(x[80:])
    with torch.no_grad():
        scores = model.forward_embeddings(torch.from_numpy(x[80:])).scores[:, 0].numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_ridge_needs_linear_regression_heads() -> None:
    with pytest.raises(ParamsError, match=r"training\.frozen_head: ridge .* is_regression: true"):
        TrainingParams(frozen_head="ridge", is_regression=False)
    TrainingParams(frozen_head="ridge", is_regression=False, mode="finetune")  # no frozen head to fit


def test_train_with_ridge_heads_on_pooled_layers_saves_a_model_the_filter_engine_scores_alike(
    tmp_path: Path, splits, tiny_params
) -> None:
    train_path, val_path = splits(1)
    params = tiny_params(frozen_head="ridge", pooling_layers=(-3, -2, -1), ridge_alphas=(1.0, 100.0))
    train_from_files(
        str(train_path),
        str(val_path),
        params=params,
        tasks=(EDUCATIONAL,),
        seed=1,
        output_dir=tmp_path / "final",
        live_dir=tmp_path / "live",
    )
    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert metrics["best"]["ridge_alpha"] in (1.0, 100.0) and set(metrics["best"]["ridge_alphas_tried"]) == {"1", "100"}
    config = AnnotatorModel.config_class.from_pretrained(tmp_path / "final")
    assert config.pooling_layers == [-3, -2, -1]
    val = read_labeled(str(val_path), (EDUCATIONAL,))
    model, tokenizer = load_model(str(tmp_path / "final"), "cpu", "float32")
    scores = score_texts(model, tokenizer, val.texts, max_length=64)[:, 0].astype(np.float64)
    assert metrics["val"]["educational"]["spearman"] == pytest.approx(
        spearmanr(scores, val.labels[:, 0]).statistic, abs=1e-4
    )
    expected = calibrate_cut(scores, val.labels[:, 0].astype(np.float64), EDUCATIONAL.threshold).cut
    assert config.calibrated_thresholds == [pytest.approx(expected, abs=1e-4)]
    card = (tmp_path / "final" / "README.md").read_text()
    assert "fitted by ridge regression" in card and "hidden states [-3, -2, -1]" in card
    # The card's baseline: the evaluate stage's TF-IDF model fitted on train, scored on val beside this model.
    train = read_labeled(str(train_path), (EDUCATIONAL,))
    baseline = TfidfClassifier.fit(train.texts, train.labels, task_names=["educational"], num_targets=[6])
    quality = metrics["val_quality"]["tasks"]["educational"]
    assert quality["baseline"]["spearman"] == pytest.approx(
        spearmanr(baseline.predict(val.texts)[:, 0], val.labels[:, 0]).statistic
    )
    assert quality["model"]["spearman"] == pytest.approx(metrics["val"]["educational"]["spearman"], abs=1e-6)
    assert "## Against a TF-IDF baseline (validation split)" in card and "## Per-language quality" in card
    assert not (tmp_path / "final" / EXPORT_FOLDER).exists(), "pooled layers have no standard transformers form"
