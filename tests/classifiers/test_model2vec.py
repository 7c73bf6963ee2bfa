"""model2vec classifier (kind ``model2vec``): distilled from the packaged MiniLM by the train stage's library, ridge
heads chosen on val, saved with model2vec's own ``save_pretrained``, loaded by kind; bad settings are clear errors."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

from mlfilter.classifiers.base import CONFIG_NAME, classifier_kind, load_classifier
from mlfilter.classifiers.model2vec_model import HEADS_NAME, STATIC_FOLDER, Model2VecClassifier, Model2VecConfig
from mlfilter.params import ParamsError, convert
from mlfilter.training.data import LabeledData
from mlfilter.training.params import TrainingParams
from mlfilter.training.text_classifier import distill_static_model, distillation_key, fit_classifier
from tests.training.conftest import DIGITS, EDUCATIONAL, SMALL_MODEL2VEC, sample_records


def labeled(records: list[dict[str, Any]]) -> LabeledData:
    labels = np.array([[np.nan if s is None else s for s in r["scores"]] for r in records], dtype=np.float32)
    return LabeledData(texts=[r["text"] for r in records], labels=labels, ids=[r["id"] for r in records], files=[])


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Model2VecClassifier, dict[str, Any], LabeledData, LabeledData]:
    """One distillation for the module: two tasks (the second with missing labels) on 30 train / 10 val documents,
    fitted as the train stage fits it, and saved."""
    root = tmp_path_factory.mktemp("model2vec")
    records = sample_records()
    train, val = labeled(records[:30]), labeled(records[30:])
    params = small_params(root)
    model, chosen = fit_classifier("model2vec", train, val, params=params, tasks=(EDUCATIONAL, DIGITS), seed=0)
    model.save_pretrained(root / "model")
    return root / "model", model, chosen, train, val


def small_params(root: Path, **settings: Any) -> TrainingParams:
    """model2vec params with the test's small vocabulary and the distillation cache under ``root``."""
    config = dataclasses.replace(SMALL_MODEL2VEC, **settings)
    return TrainingParams(classifier="model2vec", model2vec=config, embedding_cache_dir=str(root / "cache"))


def test_fits_saves_and_loads_with_the_same_scores(trained) -> None:
    folder, model, _, train, val = trained
    texts = val.texts + train.texts
    scores = model.predict(texts)
    assert scores.shape == (40, 2) and scores.dtype == np.float64
    assert np.all(scores >= 0) and np.all(scores[:, 0] <= 5) and np.all(scores[:, 1] <= 2)
    assert len({round(s, 6) for s in scores[:, 0]}) > 20, "scores must vary with the text"
    # The heads were fitted on the train texts: they must rank those labels (no hard-coded value; the strength is
    # chosen on 10 val documents, so the fit is shrunk and the bar is modest).
    assert spearmanr(scores[10:, 0], train.labels[:, 0]).statistic > 0.3

    assert classifier_kind(folder) == "model2vec"
    loaded = load_classifier(folder)
    assert isinstance(loaded, Model2VecClassifier)
    assert loaded.task_names == ["educational", "digits"] and loaded.num_targets == [6, 3]
    assert loaded.config == SMALL_MODEL2VEC and loaded.ridge_alpha == model.ridge_alpha
    np.testing.assert_array_equal(loaded.predict(texts), scores)


def test_alpha_is_the_best_tried_on_val_and_recorded(trained) -> None:
    folder, model, chosen, _, val = trained
    tried = chosen["ridge_alphas_tried"]
    assert set(tried) == {f"{a:g}" for a in SMALL_MODEL2VEC.ridge_alphas}
    assert chosen["metric"] == "spearman_mean" and chosen["value"] == max(v for v in tried.values() if v is not None)
    assert tried[f"{chosen['ridge_alpha']:g}"] == chosen["value"] and model.ridge_alpha == chosen["ridge_alpha"]
    scores = model.predict(val.texts)
    # Every val document has digits label 0: its Spearman is undefined and left out of the mean.
    assert chosen["value"] == pytest.approx(spearmanr(scores[:, 0], val.labels[:, 0]).statistic, abs=1e-9)
    assert chosen["dims"] == 32 and 2000 < chosen["vocabulary"] < 3000 and chosen["distill_seconds"] > 0
    config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    assert config["ridge_alpha"] == chosen["ridge_alpha"] and config["config"]["pca_dims"] == 32


def test_static_model_is_model2vec_own_folder_without_machine_paths(trained) -> None:
    from model2vec import StaticModel

    folder, _, _, _, val = trained
    static = StaticModel.from_pretrained(folder / STATIC_FOLDER, force_download=False)
    model = load_classifier(folder)
    np.testing.assert_allclose(static.encode(val.texts, max_length=256), model.embed(val.texts), rtol=0, atol=1e-6)
    for path in (folder / STATIC_FOLDER).iterdir():
        if path.suffix in (".json", ".md"):
            text = path.read_text(encoding="utf-8")
            assert str(Path.home()) not in text and "site-packages" not in text, path.name
    assert json.loads((folder / STATIC_FOLDER / "config.json").read_text())["tokenizer_name"] == (
        "embedded:all-MiniLM-L6-v2"
    )


def test_a_distilled_model_is_reused_from_the_cache(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    import model2vec.distill
    from transformers import AutoModel, AutoTokenizer

    from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model

    folder, model, _, _, _ = trained
    root = folder.parent

    def no_distillation(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the same settings must not distil again")

    monkeypatch.setattr(model2vec.distill, "distill_from_model", no_distillation)
    again = distill_static_model(small_params(root))
    np.testing.assert_array_equal(again.embedding, model.static.embedding)
    assert again.tokens == model.static.tokens

    path = resolve_model(EMBEDDED_ENCODER).path
    encoder, tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    key = distillation_key(encoder, tokenizer, small_params(root))
    assert [p.name for p in (root / "cache" / "model2vec").iterdir()] == [key]
    changed = [{"pca_dims": 16}, {"sif_coefficient": None}, {"token_remove_pattern": "x"}]
    keys = {distillation_key(encoder, tokenizer, small_params(root, **change)) for change in changed}
    assert len(keys) == 3 and key not in keys, "every distillation setting is part of the key"
    heads_only = small_params(root, ridge_alphas=(5.0,), max_length=64)
    assert distillation_key(encoder, tokenizer, heads_only) == key, "head and scoring settings distil nothing anew"


def test_empty_input_and_text_without_tokens(trained) -> None:
    model = load_classifier(trained[0])
    assert model.predict([]).shape == (0, 2)
    scores = model.predict(["", "\u200b\u200b", "line one\nline two\r\n\ttab"])
    assert scores.shape == (3, 2) and np.all(np.isfinite(scores))


def test_missing_files_and_mismatched_heads_are_named(trained, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(trained[0], copy)
    (copy / HEADS_NAME).unlink()
    with pytest.raises(ValueError, match=r"heads\.npz is missing"):
        load_classifier(copy)
    shutil.rmtree(copy)
    shutil.copytree(trained[0], copy)
    shutil.rmtree(copy / STATIC_FOLDER)
    with pytest.raises(ValueError, match=r"static_model is missing"):
        load_classifier(copy)
    model = load_classifier(trained[0])
    with pytest.raises(ValueError, match=r"do not fit 2 task\(s\) on 32-dimensional embeddings"):
        Model2VecClassifier(["a", "b"], [6, 3], SMALL_MODEL2VEC, model.static, np.zeros((2, 16)), np.zeros(2))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pca_dims": 0}, r"training\.model2vec: pca_dims: expected a positive integer or null"),
        ({"sif_coefficient": 1.5}, r"training\.model2vec: sif_coefficient: expected a value in \(0, 1\)"),
        ({"token_remove_pattern": "[unclosed"}, r"token_remove_pattern: '\[unclosed' is not a regex"),
        ({"ridge_alphas": [1.0, -1.0]}, r"training\.model2vec: ridge_alphas: expected one or more positive"),
        ({"max_length": 0}, r"training\.model2vec: max_length: expected a positive integer"),
        ({"pca_dim": 64}, r"training\.model2vec\.pca_dim: unknown key; allowed keys: max_length, pca_dims"),
    ],
)
def test_bad_settings_name_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        convert({"classifier": "model2vec", "model2vec": settings}, TrainingParams, "training")


def test_model2vec_needs_regression_and_reads_its_section() -> None:
    with pytest.raises(ParamsError, match=r"model2vec fits ridge regression heads; it needs is_regression: true"):
        convert({"classifier": "model2vec", "is_regression": False}, TrainingParams, "training")
    params = convert({"classifier": "model2vec", "model2vec": {"pca_dims": None, "ridge_alphas": [2]}}, TrainingParams)
    assert params.model2vec == Model2VecConfig(pca_dims=None, ridge_alphas=(2.0,))
    assert math.isclose(TrainingParams().model2vec.sif_coefficient or 0, 1e-4)


def test_a_folder_that_is_no_encoder_is_a_clear_error(tmp_path: Path) -> None:
    from mlfilter.errors import MlfilterError

    params = dataclasses.replace(small_params(tmp_path), base_model=str(tmp_path))
    with pytest.raises(MlfilterError, match=r"training\.base_model: cannot load '.*' from "):
        distill_static_model(params)
