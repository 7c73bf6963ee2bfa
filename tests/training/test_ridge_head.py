"""Pooling several hidden layers, and linear heads fitted by ridge regression, the L2 strength and the calibrated
cut chosen by leave-one-out over train and val."""

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
from mlfilter.scores import at_or_above
from mlfilter.training.calibration import calibrate_cut
from mlfilter.training.data import read_labeled
from mlfilter.training.params import TrainingParams
from mlfilter.training.ridge_head import fit_ridge_heads
from mlfilter.training.run import load_base, train_from_files
from tests.training.conftest import DIGITS, EDUCATIONAL, sample_records


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


def _brute_loo(
    x: np.ndarray, labels: np.ndarray, alpha: float, weights: np.ndarray | None = None, rows: np.ndarray | None = None
) -> np.ndarray:
    """Leave-one-out ridge predictions of ``rows`` (default: all) by refitting without each document in turn."""
    keep = np.ones(len(labels), dtype=bool)
    rows = np.arange(len(labels)) if rows is None else rows
    out = np.empty(len(rows))
    for position, i in enumerate(rows):
        keep[i] = False
        ridge = Ridge(alpha=alpha).fit(x[keep], labels[keep], sample_weight=None if weights is None else weights[keep])
        out[position] = ridge.predict(x[i : i + 1])[0]
        keep[i] = True
    return out


def test_ridge_alpha_is_the_best_by_leave_one_out_over_train_and_val_and_the_heads_fit_both() -> None:
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
    x64, y = x.astype(np.float64), labels[:, 0]
    loo = {a: _brute_loo(x64, y, a) for a in alphas}
    brute = {a: spearmanr(loo[a], y).statistic for a in alphas}
    assert fit.alpha == max(brute, key=brute.get)
    assert fit.tried == {f"{a:g}": pytest.approx(v) for a, v in brute.items()}
    np.testing.assert_allclose(fit.loo_scores[:, 0], loo[fit.alpha], atol=1e-6)
    assert fit.value == pytest.approx(spearmanr(loo[fit.alpha][80:], y[80:]).statistic)
    expected = Ridge(alpha=fit.alpha).fit(x64, y).predict(x64[80:])
    with torch.no_grad():
        scores = model.forward_embeddings(torch.from_numpy(x[80:])).scores[:, 0].numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_weighted_leave_one_out_with_more_documents_than_features_and_a_task_label_missing() -> None:
    # More documents than features (scikit-learn's SVD form of leave-one-out), loss weights, and missing labels:
    # each task's predictions are those of weighted fits on its labelled documents only.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(420, 384))
    labels = np.stack([np.clip(np.round(x[:, 0] + 1.5), 0, 5), np.clip(np.round(x[:, 1] + 1), 0, 2)], axis=1)
    labels[::7, 1] = np.nan
    weights = rng.uniform(0.5, 3.0, size=420)
    model, _ = load_base(TrainingParams(), (EDUCATIONAL, DIGITS))
    fit = fit_ridge_heads(
        model,
        x[:300],
        labels[:300],
        x[300:],
        labels[300:],
        tasks=(EDUCATIONAL, DIGITS),
        alphas=(30.0,),
        metric="mae_mean",
        higher_is_better=False,
        train_weights=weights[:300],
        val_weights=weights[300:],
    )
    present = ~np.isnan(labels[:, 1])
    rows = rng.choice(420, size=12, replace=False)  # refitting 420 times is slow: a sample of documents
    np.testing.assert_allclose(fit.loo_scores[rows, 0], _brute_loo(x, labels[:, 0], 30.0, weights, rows), atol=1e-8)
    labelled = np.flatnonzero(present)
    rows = rng.choice(len(labelled), size=12, replace=False)
    brute = _brute_loo(x[present], labels[present, 1], 30.0, weights[present], rows)
    np.testing.assert_allclose(fit.loo_scores[labelled[rows], 1], brute, atol=1e-8)
    assert np.isnan(fit.loo_scores[~present, 1]).all()


def test_leave_one_out_calibration_places_the_cut_where_the_labels_turn_positive_though_val_has_no_positive() -> None:
    # One informative feature; labels step up with it. Val holds only low documents: on val alone there is no cut.
    # The leave-one-out predictions over train and val put it between the documents either side of the step,
    # and it follows the step when the labels move.
    rng = np.random.default_rng(2)
    signal = np.r_[rng.uniform(0, 4, size=160), rng.uniform(0, 1.5, size=40)]
    x = np.zeros((200, 384))
    x[:, 0] = signal
    x[:, 1:] = rng.normal(scale=0.01, size=(200, 383))
    model, _ = load_base(TrainingParams(), (EDUCATIONAL,))
    cuts = {}
    for step in (3.0, 2.5):
        # floor(signal) below the step, 3 from it on: label >= 3 exactly where signal >= step
        labels = np.where(signal >= step, 3.0, np.minimum(np.floor(signal), 2.0))[:, None]
        assert not at_or_above(labels[160:, 0], 3).any()
        assert calibrate_cut(np.zeros(40), labels[160:, 0], 3).cut is None, "val alone: nothing to separate"
        fit = fit_ridge_heads(
            model,
            x[:160],
            labels[:160],
            x[160:],
            labels[160:],
            tasks=(EDUCATIONAL,),
            alphas=(1.0,),
            metric="spearman_mean",
            higher_is_better=True,
        )
        calibration = calibrate_cut(fit.loo_scores[:, 0], labels[:, 0], 3)
        assert calibration.positives == int((signal >= step).sum())
        # The smoothed F1 puts the cut at the step, give or take a document either side of it.
        assert calibration.f1 >= 0.95, calibration
        below, above = fit.loo_scores[signal < step, 0].max(), fit.loo_scores[signal >= step, 0].min()
        assert below - 0.1 < calibration.cut < above + 0.1
        cuts[step] = calibration.cut
    assert cuts[2.5] < cuts[3.0] - 0.2, "the cut moves down with the step"


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
    train, val = read_labeled(str(train_path), (EDUCATIONAL,)), read_labeled(str(val_path), (EDUCATIONAL,))
    model, tokenizer = load_model(str(tmp_path / "final"), "cpu", "float32")
    batch = tokenizer(train.texts + val.texts, truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        x = model.embed(batch["input_ids"], batch["attention_mask"]).double().numpy()
    y = np.r_[train.labels[:, 0], val.labels[:, 0]].astype(np.float64)
    alpha = metrics["best"]["ridge_alpha"]
    # The saved heads: ridge on train and val together; the filter engine scores the same.
    scores = score_texts(model, tokenizer, val.texts, max_length=64)[:, 0].astype(np.float64)
    np.testing.assert_allclose(scores, Ridge(alpha=alpha).fit(x, y).predict(x[30:]), atol=1e-3)
    # Validation figures and the calibrated cut: the leave-one-out predictions (val rows; train and val).
    loo = _brute_loo(x, y, alpha)
    assert metrics["val"]["educational"]["spearman"] == pytest.approx(spearmanr(loo[30:], y[30:]).statistic, abs=1e-4)
    calibration = calibrate_cut(loo, y, EDUCATIONAL.threshold)
    assert config.calibrated_thresholds == [pytest.approx(calibration.cut, abs=1e-3)]
    assert metrics["calibration"]["educational"]["source"] == "leave-one-out over train and val"
    assert metrics["calibration"]["educational"]["documents"] == 40
    card = (tmp_path / "final" / "README.md").read_text()
    assert "fitted by ridge regression" in card and "hidden states [-3, -2, -1]" in card
    # The card's baseline: the evaluate stage's TF-IDF model fitted on train, scored on val beside this model.
    baseline = TfidfClassifier.fit(train.texts, train.labels, task_names=["educational"], num_targets=[6])
    quality = metrics["val_quality"]["tasks"]["educational"]
    assert quality["baseline"]["spearman"] == pytest.approx(
        spearmanr(baseline.predict(val.texts)[:, 0], val.labels[:, 0]).statistic
    )
    assert quality["model"]["spearman"] == pytest.approx(metrics["val"]["educational"]["spearman"], abs=1e-6)
    assert "## Against a TF-IDF baseline (validation split)" in card and "## Per-language quality" in card
    assert not (tmp_path / "final" / EXPORT_FOLDER).exists(), "pooled layers have no standard transformers form"
