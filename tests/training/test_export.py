"""The standard transformers export: loadable by AutoModelForSequenceClassification without mlfilter."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, RobertaConfig

from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
from mlfilter.export import EXPORT_FOLDER, build_sequence_classifier, export_sequence_classifier
from mlfilter.filtering.engine import Scorer
from mlfilter.filtering.params import ScoringParams
from mlfilter.modeling import AnnotatorConfig, AnnotatorModel
from mlfilter.training.run import train_from_files
from tests.training.conftest import DIGITS, EDUCATIONAL, sample_records

#: Runs in ``python -I -S``: no site-packages .pth files, so the editable mlfilter install is not on the path.
FRESH_SCRIPT = """
import json, sys
sys.path.append({site!r})
try:
    import mlfilter
except ImportError:
    pass
else:
    raise SystemExit("mlfilter is importable: the test would prove nothing")
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder, texts = sys.argv[1], json.load(open(sys.argv[2]))
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
with torch.inference_mode():
    logits = model(**batch).logits
assert "mlfilter" not in sys.modules
print(json.dumps({{"class": type(model).__name__, "labels": model.config.id2label, "scores": logits.tolist()}}))
"""


def test_trained_cls_model_is_exported_and_scores_the_same_without_mlfilter(
    tmp_path: Path, splits, tiny_params
) -> None:
    train, val = splits(2)
    output = tmp_path / "model"
    train_from_files(
        str(train),
        str(val),
        params=tiny_params(pooling="cls"),
        tasks=[EDUCATIONAL, DIGITS],
        seed=7,
        output_dir=output,
        live_dir=tmp_path / "live",
    )
    export = output / EXPORT_FOLDER
    card = (export / "README.md").read_text()
    assert "AutoModelForSequenceClassification.from_pretrained" in card and "educational_int_score" in card
    texts = [r["text"] for r in sample_records()[:12]] + ["", "Kurzer Text."]
    expected = Scorer.load(str(output), ScoringParams(max_length=64, device="cpu", dtype="float32")).score(texts)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = FRESH_SCRIPT.format(site=sysconfig.get_paths()["purelib"])
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(export), str(tmp_path / "texts.json")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded["class"] == "BertForSequenceClassification"
    assert loaded["labels"] == {"0": "educational", "1": "digits"}
    scores = np.asarray(loaded["scores"])
    assert scores.shape == (len(texts), 2)
    assert np.ptp(scores[:, 0]) > 1e-3, "scores must vary with the text"
    np.testing.assert_allclose(scores, expected.scores, atol=1e-4, rtol=0)


def _heads(model: AnnotatorModel) -> AnnotatorModel:
    torch.manual_seed(3)
    for parameter in model.heads.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    return model.eval()


def test_classification_heads_follow_the_card_recipe() -> None:
    minilm = resolve_model(EMBEDDED_ENCODER).path
    model = _heads(
        AnnotatorModel.from_encoder(
            minilm, task_names=["a", "b"], num_targets_per_task=[4, 3], is_regression=False, pooling="cls"
        )
    )
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    batch = tokenizer(["one short text", "a somewhat longer second text here"], padding=True, return_tensors="pt")
    exported = build_sequence_classifier(model)
    with torch.inference_mode():
        logits = exported(**batch).logits
        expected = model(batch["input_ids"], batch["attention_mask"]).scores
    scores = [logits[:, s : s + k].softmax(-1) @ torch.arange(k, dtype=torch.float32) for s, k in ((0, 4), (4, 3))]
    torch.testing.assert_close(torch.stack(scores, -1), expected, atol=1e-5, rtol=0)
    assert exported.config.id2label[6] == "b_2"


def test_roberta_encoders_export_through_their_classification_head(tmp_path: Path) -> None:
    encoder = RobertaConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    config = AnnotatorConfig(encoder=encoder.to_dict(), task_names=["q"], num_targets_per_task=[6], pooling="cls")
    model = _heads(AnnotatorModel(config))
    ids = torch.randint(3, 120, (3, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    exported = build_sequence_classifier(model)
    exported.save_pretrained(tmp_path / "r")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "r").eval()
    with torch.inference_mode():
        torch.testing.assert_close(
            reloaded(input_ids=ids, attention_mask=mask).logits, model(ids, mask).scores, atol=1e-5, rtol=0
        )
    assert type(reloaded).__name__ == "RobertaForSequenceClassification"


def test_mean_pooling_is_not_exported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    minilm = resolve_model(EMBEDDED_ENCODER).path
    model = AnnotatorModel.from_encoder(minilm, pooling="mean")
    with caplog.at_level("INFO", logger="mlfilter.export"):
        assert export_sequence_classifier(model, AutoTokenizer.from_pretrained(minilm), tmp_path / "x") is False
    assert not (tmp_path / "x").exists()
    assert "pooling 'mean'" in caplog.text
