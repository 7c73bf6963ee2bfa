"""The TF-IDF baseline in every evaluation: margins by hand, and a classifier that loses to it is warned about."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from mlfilter.cli import main
from mlfilter.evaluation.baseline import margins, subsample, warnings_for
from mlfilter.evaluation.classifier import load_split
from mlfilter.params import TaskParams
from tests.evaluation.helpers import annotation, write_annotations, write_records

SAMPLING_DATA = Path(__file__).parents[1] / "sampling" / "data"
#: Real web documents whose labels follow their language, which character n-grams learn from 8 examples each.
LANGUAGES = {"en": "fineweb-edu-en.jsonl", "de": "fineweb2-deu_Latn.jsonl", "sr": "fineweb2-srp_Cyrl.jsonl"}


def test_margins_are_positive_when_the_classifier_is_better() -> None:
    classifier = {"edu": {"spearman": 0.7, "mae": 0.5, "macro_f1": 0.4, "f1_at_threshold": None, "accuracy": 0.6}}
    baseline = {"edu": {"spearman": 0.6, "mae": 0.7, "macro_f1": 0.5, "f1_at_threshold": 0.3, "accuracy": 0.6}}
    result = margins(classifier, baseline)["edu"]
    assert result["spearman"] == pytest.approx(0.1)
    assert result["mae"] == pytest.approx(0.2)
    assert result["macro_f1"] == pytest.approx(-0.1)
    assert result["f1_at_threshold"] is None and result["accuracy"] == 0
    assert result["cohen_kappa_quadratic"] is None
    assert result["beats_baseline"] is True
    assert warnings_for(margins(classifier, baseline)) == []
    worse = margins({"edu": {"spearman": 0.5}}, baseline)
    assert worse["edu"]["beats_baseline"] is False
    assert "does not beat the TF-IDF + ridge baseline" in warnings_for(worse)[0]
    assert "cannot be compared" in warnings_for(margins({"edu": {"spearman": None}}, baseline))[0]


def test_an_undefined_margin_says_which_side_is_undefined() -> None:
    classifier = {"edu": {"spearman": None, "mae": 0.5, "f1_at_threshold": None}}
    baseline = {"edu": {"spearman": 0.6, "mae": 0.7, "f1_at_threshold": None}}
    result = margins(classifier, baseline)["edu"]
    assert result["spearman"] is None and result["beats_baseline"] is None
    assert result["mae"] == pytest.approx(0.2)
    assert result["undefined"]["spearman"] == "spearman of the classifier is undefined on the test split"
    assert result["undefined"]["f1_at_threshold"] == (
        "f1_at_threshold of the classifier and the baseline is undefined on the test split"
    )
    assert "mae" not in result["undefined"]
    complete = {
        name: 0.5 for name in ("spearman", "cohen_kappa_quadratic", "accuracy", "macro_f1", "f1_at_threshold", "mae")
    }
    assert "undefined" not in margins({"edu": complete}, {"edu": complete})["edu"]


def write_language_project(root: Path, model_dir: Path) -> Path:
    """Train and test splits of real documents labelled by language (en 0, de 2, sr 4 educational; 0/1/2 toxic),
    two annotators, and the untrained stand-in model, whose random heads cannot know any of that."""
    train, test = [], []
    for rank, (language, name) in enumerate(LANGUAGES.items()):
        lines = (SAMPLING_DATA / name).read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            record = {
                "id": f"{language}-{index}",
                "text": json.loads(line)["text"],
                "language": language,
                "scores": [2 * rank, rank],
            }
            (train if index < 8 else test).append(record)
    write_records(root / "data" / "splits" / "train.jsonl.zst", train)
    write_records(root / "data" / "splits" / "test.jsonl.zst", test)
    write_records(root / "data" / "labels" / "gold.jsonl.zst", [])
    for annotator in ("alpha", "beta"):
        records = [annotation(r["id"], annotator, {"educational": [r["scores"][0]]}) for r in train + test]
        write_annotations(root / "data" / "annotations", annotator, records)
    shutil.copytree(model_dir, root / "models" / "annotator" / "final")
    params = {
        "seed": 1,
        "tasks": [
            {"name": "educational", "prompt": "p.yaml", "num_targets": 6, "threshold": 3},
            {"name": "toxic", "prompt": "t.yaml", "num_targets": 3, "threshold": 1},
        ],
        "aggregate": {"task_names": {}},
        "evaluate": {"bootstrap_samples": 0, "min_language_documents": 4, "max_length": 64, "device": "cpu"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def test_a_classifier_that_loses_to_the_baseline_is_warned_about(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    project = write_language_project(tmp_path, model_dir)
    monkeypatch.chdir(project)
    with caplog.at_level(logging.WARNING):
        assert (
            main(["evaluate", "--documents", "data/splits/test.jsonl.zst", "--train", "data/splits/train.jsonl.zst"])
            == 0
        )
    out = project / "reports" / "evaluate"
    metrics = json.loads((out / "metrics.json").read_text())
    report = json.loads((out / "report.json").read_text())

    baseline, classifier = metrics["baseline"]["educational"], metrics["classifier"]["educational"]
    assert baseline["documents"] == classifier["documents"] == 12
    assert baseline["spearman"] > 0.9
    margin = metrics["margin_over_baseline"]["educational"]
    assert margin["spearman"] == pytest.approx(classifier["spearman"] - baseline["spearman"])
    assert margin["mae"] == pytest.approx(baseline["mae"] - classifier["mae"])
    assert margin["beats_baseline"] is False
    assert any("educational: the classifier does not beat" in w for w in report["warnings"])
    assert any("educational: the classifier does not beat" in r.getMessage() for r in caplog.records)
    assert report["baseline"]["educational"]["train_documents"] == 24
    assert metrics["throughput"]["baseline_seconds"] > 0
    assert set(report["baseline"]["educational"]["per_language"]) == {"en", "de", "sr"}
    assert report["margin_over_baseline"] == metrics["margin_over_baseline"]
    # Two thirds of the test documents are German or Serbian and the model is on the English-only MiniLM.
    assert any("67% of the documents are not English" in w and "xlm-roberta" in w for w in report["warnings"])


def test_without_a_train_split_there_is_no_baseline(tmp_path: Path, model_dir: Path, monkeypatch) -> None:
    project = write_language_project(tmp_path, model_dir)
    monkeypatch.chdir(project)
    assert main(["evaluate", "--documents", "data/splits/test.jsonl.zst"]) == 0
    metrics = json.loads((project / "reports" / "evaluate" / "metrics.json").read_text())
    assert "baseline" not in metrics and "margin_over_baseline" not in metrics


def test_the_baseline_trains_on_a_seeded_subsample_of_a_large_split(tmp_path: Path, model_dir: Path) -> None:
    project = write_language_project(tmp_path, model_dir)
    tasks = [
        TaskParams(name="educational", prompt="p.yaml", num_targets=6, threshold=3),
        TaskParams(name="toxic", prompt="t.yaml", num_targets=3, threshold=1),
    ]
    split = load_split(str(project / "data" / "splits" / "train.jsonl.zst"), tasks)
    assert subsample(split, 0, seed=1) is split and subsample(split, 24, seed=1) is split
    small = subsample(split, 10, seed=1)
    assert len(small.ids) == len(small.texts) == len(small.labels) == 10
    assert [split.ids.index(i) for i in small.ids] == sorted(split.ids.index(i) for i in small.ids)
    assert subsample(split, 10, seed=1).ids == small.ids != subsample(split, 10, seed=2).ids
    for doc_id, text, label in zip(small.ids, small.texts, small.labels[:, 0], strict=True):
        position = split.ids.index(doc_id)
        assert split.texts[position] == text and split.labels[position, 0] == label
