"""Training with the packaged MiniLM: both paths, saved models, DVCLive output, resume, embedding cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ruamel.yaml import YAML
from transformers import AutoModel, AutoTokenizer, Trainer

from mlfilter.errors import MlfilterError
from mlfilter.modeling import AnnotatorModel
from mlfilter.params import load_section
from mlfilter.training.data import read_labeled
from mlfilter.training.frozen import Embedder
from mlfilter.training.metrics import NO_LABELS, all_metrics
from mlfilter.training.run import load_base, train_annotator, train_from_files
from tests.training.conftest import DIGITS, EDUCATIONAL, sample_records, write_jsonl


def _predict(model_dir: Path, texts: list[str], max_length: int = 64) -> torch.Tensor:
    model = AutoModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).scores


def test_regression_on_the_fast_path_writes_model_card_and_dvclive(tmp_path: Path, splits, tiny_params) -> None:
    train_path, val_path = splits(1)
    result = train_from_files(
        str(train_path),
        str(val_path),
        params=tiny_params(),
        tasks=(EDUCATIONAL,),
        seed=42,
        output_dir=tmp_path / "models" / "final",
        live_dir=tmp_path / "reports" / "train",
    )
    final = tmp_path / "models" / "final"
    names = {p.name for p in final.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= names
    assert not any(n.endswith(".bin") for n in names)
    assert result.path == "frozen_embeddings"

    metrics = json.loads((tmp_path / "reports" / "train" / "metrics.json").read_text())
    assert set(metrics["val"]["educational"]) == {"mae", "mse", "spearman", "accuracy", "macro_f1", "binary_f1"}
    assert metrics["val"]["educational"] == metrics["val"]["mean"]
    assert metrics["data"]["train"]["documents"] == 30 and metrics["data"]["val"]["documents"] == 10
    assert metrics["data"]["train"]["counts"] == {"seen": 30, "kept": 30, "dropped": {}}
    assert metrics["throughput"]["embedding"]["embedded"] == 40
    assert metrics["throughput"]["train_docs_per_second"] > 0
    assert metrics["best"]["metric"] == "spearman_mean"
    plots = tmp_path / "reports" / "train" / "plots" / "metrics"
    eval_loss = (plots / "eval" / "loss.tsv").read_text().splitlines()
    assert eval_loss[0].split("\t") == ["step", "loss"] and len(eval_loss) == 3  # header + two epochs
    curves = sorted(str(path.relative_to(plots)) for path in plots.rglob("*.tsv"))
    assert curves == [  # one curve per metric people read; no runtimes, FLOPs or single-point summaries
        "eval/binary_f1_educational.tsv",
        "eval/loss.tsv",
        "eval/macro_f1_educational.tsv",
        "eval/mae_educational.tsv",
        "eval/spearman_educational.tsv",
        "loss.tsv",
    ]
    assert not (tmp_path / "reports" / "train" / "dvc.yaml").exists()

    card = (final / "README.md").read_text()
    for expected in (
        "base_model: sentence-transformers/all-MiniLM-L6-v2",
        "| educational | 0–5 | 3 |",
        "| train | 30 | none | `",
        "AnnotatorModel.from_pretrained",
        "learning_rate: 0.005",
    ):
        assert expected in card

    val = read_labeled(str(val_path), (EDUCATIONAL,))
    scores = _predict(final, val.texts).numpy()[:, 0]
    recomputed = all_metrics(scores[:, None], scores[:, None], val.labels.astype(float), (EDUCATIONAL,), True)
    assert recomputed["mae_educational"] == pytest.approx(result.val_metrics["mae_educational"], abs=1e-5)
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_two_task_classification_fine_tunes_the_encoder(tmp_path: Path, splits, tiny_params) -> None:
    train_path, val_path = splits(2)
    params = tiny_params(
        mode="finetune",
        is_regression=False,
        finetune_num_epochs=1,
        finetune_learning_rate=1e-4,
        finetune_max_length=64,
        finetune_batch_size=8,
        head_hidden_size=16,
        classifier_dropout=0.1,
        best_metric="macro_f1_mean",
        gradient_checkpointing=True,
    )
    before = load_base(params, (EDUCATIONAL, DIGITS))[0].encoder.state_dict()
    result = train_from_files(
        str(train_path),
        str(val_path),
        params=params,
        tasks=(EDUCATIONAL, DIGITS),
        seed=1,
        output_dir=tmp_path / "final",
        live_dir=tmp_path / "live",
    )
    assert result.path == "trainer"
    assert result.summary["throughput"]["train_tokens_per_second"] > 0
    model = AnnotatorModel.from_pretrained(tmp_path / "final")
    assert model.config.task_names == ["educational", "digits"] and model.config.num_targets_per_task == [6, 3]
    assert model.config.thresholds == [3.0, 1.0] and not model.config.is_regression
    changed = [k for k, v in model.encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "fine-tuning left every encoder weight unchanged"
    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert set(metrics["val"]) == {"educational", "digits", "mean"}
    assert 0 <= metrics["val"]["digits"]["accuracy"] <= 1
    train_args = yaml.safe_load((tmp_path / "live" / "params.yaml").read_text())
    assert train_args["train_sampling_strategy"] == "group_by_length"
    assert train_args["metric_for_best_model"] == "macro_f1_mean" and train_args["greater_is_better"] is True
    scores = _predict(tmp_path / "final", ["A lesson on photosynthesis in plants."])
    assert scores.shape == (1, 2) and 0 <= scores[0, 0] <= 5 and 0 <= scores[0, 1] <= 2


def test_a_task_missing_from_val_gives_null_with_a_reason_in_strict_metrics_json(tmp_path: Path, tiny_params) -> None:
    records = sample_records()
    val = [dict(r, scores=[r["scores"][0], None]) for r in records[30:]]
    train_path = write_jsonl(tmp_path / "splits" / "train.jsonl", records[:30])
    val_path = write_jsonl(tmp_path / "splits" / "val.jsonl", val)
    train_from_files(
        str(train_path),
        str(val_path),
        params=tiny_params(num_epochs=1),
        tasks=(EDUCATIONAL, DIGITS),
        seed=3,
        output_dir=tmp_path / "final",
        live_dir=tmp_path / "live",
    )

    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["val"]["digits"]["spearman"] is None
    assert metrics["val"]["digits"]["undefined"] == NO_LABELS
    assert metrics["val"]["mean"]["mae"] == metrics["val"]["educational"]["mae"] is not None
    assert "spearman_digits" not in metrics.get("eval", {}) and "spearman_educational" in metrics["eval"]
    assert "n/a" in (tmp_path / "final" / "README.md").read_text()

    with pytest.raises(MlfilterError, match=r"best_metric: spearman_digits is undefined.*no label for task 'digits'"):
        train_from_files(
            str(train_path),
            str(val_path),
            params=tiny_params(best_metric="spearman_digits"),
            tasks=(EDUCATIONAL, DIGITS),
            seed=3,
            output_dir=tmp_path / "other",
            live_dir=tmp_path / "other-live",
        )


def test_fast_path_matches_the_full_model_with_a_frozen_base(tmp_path: Path, splits, tiny_params) -> None:
    train_path, val_path = splits(2)
    train = read_labeled(str(train_path), (EDUCATIONAL, DIGITS))
    val = read_labeled(str(val_path), (EDUCATIONAL, DIGITS))
    runs = {}
    for name, fast in (("fast", True), ("trainer", False)):
        params = tiny_params(frozen_fast_path=fast, group_by_length=False, head_hidden_size=8)
        runs[name] = train_annotator(
            train,
            val,
            params=params,
            tasks=(EDUCATIONAL, DIGITS),
            seed=7,
            output_dir=tmp_path / name,
            live_dir=tmp_path / f"live-{name}",
        )
    assert runs["fast"].path == "frozen_embeddings" and runs["trainer"].path == "trainer"
    fast, full = _predict(tmp_path / "fast", val.texts), _predict(tmp_path / "trainer", val.texts)
    assert torch.allclose(fast, full, atol=1e-4), (fast - full).abs().max()
    for key, value in runs["fast"].val_metrics.items():
        assert value == pytest.approx(runs["trainer"].val_metrics[key], abs=1e-4, nan_ok=True), key  # NaN: undefined

    # The heads applied to cached embeddings give what a forward pass of the saved model gives.
    model = AnnotatorModel.from_pretrained(tmp_path / "fast").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "fast")
    embedder = Embedder(
        model, tokenizer, cache_dir=tmp_path / "embeddings", max_length=64, batch_size=4, precision="fp32"
    )
    embeddings, stats = embedder.embed(val.texts)
    assert stats.cached == len(val.texts) and stats.embedded == 0
    with torch.no_grad():
        from_cache = model.forward_embeddings(torch.from_numpy(embeddings)).scores
    assert torch.allclose(from_cache, fast, atol=1e-5)


def test_learning_rate_from_dvc_exp_run_style_params_reaches_the_optimizer(tmp_path: Path, splits) -> None:
    train_path, val_path = splits(1)
    rates = {}
    for written in ("2e-05", "0.003"):
        params_file = tmp_path / f"params-{written}.yaml"
        params_file.write_text(
            f"training:\n  mode: frozen\n  learning_rate: {written}\n  num_epochs: 1\n  max_length: 32\n"
            "  early_stopping_patience: 0\n"
            f"  embedding_cache_dir: {tmp_path / 'embeddings'}\n  checkpoint_dir: {tmp_path / 'checkpoints'}\n",
            encoding="utf-8",
        )
        if written == "2e-05":  # plain YAML reads what `dvc exp run -S training.learning_rate=2e-5` writes as text
            assert yaml.safe_load(params_file.read_text())["training"]["learning_rate"] == written
        live = tmp_path / f"live-{written}"
        result = train_from_files(
            str(train_path),
            str(val_path),
            params=load_section("training", params_file),
            tasks=(EDUCATIONAL,),
            seed=42,
            output_dir=tmp_path / f"final-{written}",
            live_dir=live,
        )
        rates[written] = result.initial_learning_rates
        logged = YAML(typ="safe").load((live / "params.yaml").read_text())  # YAML 1.2, as DVC reads it
        assert logged["learning_rate"] == float(written)
    assert rates["2e-05"] and all(rate == 2e-05 for rate in rates["2e-05"])
    assert all(rate == 0.003 for rate in rates["0.003"])


def test_an_interrupted_run_resumes_from_its_last_checkpoint(
    tmp_path: Path, splits, tiny_params, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_path, val_path = splits(1)
    train = read_labeled(str(train_path), (EDUCATIONAL,))
    val = read_labeled(str(val_path), (EDUCATIONAL,))
    params = tiny_params(num_epochs=3)
    complete = train_annotator(
        train, val, params=params, tasks=(EDUCATIONAL,), seed=3, output_dir=tmp_path / "a", live_dir=tmp_path / "live-a"
    )
    assert not complete.resumed and not any((tmp_path / "checkpoints").iterdir())

    evaluate = Trainer.evaluate
    calls = []

    def crash_in_second_epoch(self: Trainer, *args: object, **kwargs: object) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed during the second epoch's evaluation")
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "evaluate", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_annotator(
            train,
            val,
            params=params,
            tasks=(EDUCATIONAL,),
            seed=3,
            output_dir=tmp_path / "b",
            live_dir=tmp_path / "live-b",
        )
    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    assert not (tmp_path / "b").exists()
    (run_dir,) = (tmp_path / "checkpoints").iterdir()
    assert [p.name for p in run_dir.glob("checkpoint-*")] == [f"checkpoint-{math.ceil(len(train) / params.batch_size)}"]

    resumed = train_annotator(
        train, val, params=params, tasks=(EDUCATIONAL,), seed=3, output_dir=tmp_path / "b", live_dir=tmp_path / "live-b"
    )
    assert resumed.resumed
    assert resumed.val_metrics == pytest.approx(complete.val_metrics, abs=1e-6)
    assert torch.allclose(_predict(tmp_path / "a", val.texts), _predict(tmp_path / "b", val.texts), atol=1e-6)


def test_embedding_cache_embeds_each_text_once_per_encoder(tmp_path: Path, tiny_params) -> None:
    params = tiny_params()
    model, tokenizer = load_base(params, (EDUCATIONAL,))

    def embedder(max_length: int = 64) -> Embedder:  # a fresh one reads the cache folder anew
        return Embedder(
            model, tokenizer, cache_dir=tmp_path / "cache", max_length=max_length, batch_size=3, precision="fp32"
        )

    texts = ["a first text", "a second, somewhat longer text", "third", "a first text"]
    first, stats = embedder().embed(texts)
    assert (stats.embedded, stats.cached) == (3, 1)
    assert np.array_equal(first[0], first[3])
    again, stats = embedder().embed(["third", "a brand new text", "a first text"])
    assert (stats.embedded, stats.cached) == (1, 2)
    assert np.array_equal(again[0], first[2]) and np.array_equal(again[2], first[0])
    _, stats = embedder(max_length=16).embed(["third"])
    assert stats.embedded == 1, "a different max_length must not reuse the cache"
    # A shard whose keys file never got written (a crash mid-write) is ignored and its texts embedded anew.
    for keys_file in embedder().cache.folder.glob("*.keys.npy"):
        keys_file.unlink()
    _, stats = embedder().embed(texts)
    assert stats.embedded == 4 - 1
    with torch.no_grad():
        direct = model.embed(**{k: v for k, v in tokenizer(["third"], return_tensors="pt").items()})
    assert np.allclose(first[2], direct[0].numpy(), atol=1e-5)


def test_early_stopping_ends_training_when_val_stops_improving(tmp_path: Path, splits, tiny_params) -> None:
    train_path, val_path = splits(1)
    params = tiny_params(num_epochs=6, learning_rate=1e-12, early_stopping_patience=1, best_metric="mae_educational")
    result = train_from_files(
        str(train_path),
        str(val_path),
        params=params,
        tasks=(EDUCATIONAL,),
        seed=42,
        output_dir=tmp_path / "final",
        live_dir=tmp_path / "live",
    )
    assert result.summary["best"]["epochs_run"] == 2  # epoch 2 did not beat epoch 1: stop
    assert result.summary["best"]["metric"] == "mae_educational"
