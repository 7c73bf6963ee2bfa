"""The original tool's commands, exactly as its users type them, on its files and on the annotate stage's."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlfilter.cli import main
from tests.evaluation.helpers import annotation, original, write_annotations, write_jsonl

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def original_files(folder: Path, docs: int = 40) -> None:
    """``data_annotated.jsonl`` (one model, three generations) and ``a.jsonl``/``b.jsonl`` (one file per model)."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 6, docs)
    noisy = [np.clip(truth + rng.integers(-1, 2, docs), 0, 5) for _ in range(3)]
    write_jsonl(
        folder / "data_annotated.jsonl",
        [original(str(i), [int(n[i]) for n in noisy], "llama", lang="en" if i % 2 else "de") for i in range(docs)],
    )
    write_jsonl(folder / "a.jsonl", [original(str(i), [int(n[i]) for n in noisy], "test") for i in range(docs)])
    other = [np.clip(truth + rng.integers(-2, 2, docs), 0, 5) for _ in range(3)]
    write_jsonl(folder / "b.jsonl", [original(str(i), [int(n[i]) for n in other], "test") for i in range(docs)])


def test_interrater_reliability_exactly_as_written_in_a_subprocess(tmp_path: Path) -> None:
    original_files(tmp_path)
    mlfilter = Path(sys.executable).parent / "mlfilter"
    done = subprocess.run(
        [str(mlfilter), "interrater_reliability", "data_annotated.jsonl", "--output_file_path", "output.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "output.json").read_text())
    task = report["tasks"]["score"]
    assert task["raters"] == ["llama[0]", "llama[1]", "llama[2]"]
    assert 0.3 < task["agreement"]["krippendorff_alpha_ordinal"] < 1
    assert task["agreement"]["confidence_intervals"]["samples"] == 1000
    assert set(task["per_language"]) == {"de", "en"}
    assert "krippendorff_alpha_ordinal" in done.stdout


def test_interrater_reliability_one_file_per_model_with_majority(tmp_path: Path, monkeypatch, capsys) -> None:
    original_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = "interrater_reliability a.jsonl b.jsonl --aggregation majority --output_file_path output.json"
    assert main(shlex.split(argv)) == 0
    report = json.loads((tmp_path / "output.json").read_text())
    agreement = report["tasks"]["score"]["agreement"]
    assert agreement["raters"] == ["test@a", "test@b"]
    assert report["aggregation"] == "majority"
    assert agreement["pairwise"][0]["documents"] == 40
    assert "score: 2 raters" in capsys.readouterr().out


def test_plot_scores_exactly_as_written(tmp_path: Path, monkeypatch) -> None:
    original_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split("plot_scores a.jsonl b.jsonl --aggregation majority --output_dir outputs")) == 0
    names = sorted(p.name for p in (tmp_path / "outputs").iterdir())
    assert names == [
        "score_agreement_heatmap.png",
        "score_confusion_test_a_vs_test_b.png",
        "score_score_differences_boxplot.png",
        "score_score_differences_histogram.png",
        "score_score_distributions.png",
    ]
    for name in names:
        data = (tmp_path / "outputs" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def annotate_stage_output(root: Path) -> Path:
    """``data/annotations/<annotator>/part-*.jsonl.zst`` for three annotators and two tasks."""
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 6, 30)
    for annotator in ("alpha", "beta", "gamma"):
        records = []
        for i in range(30):
            edu = [int(np.clip(truth[i] + rng.integers(-1, 2), 0, 5)) for _ in range(2)]
            records.append(annotation(f"doc-{i}", annotator, {"educational": edu, "toxic": [int(truth[i] > 3)]}))
        write_annotations(root / "data" / "annotations", annotator, records, per_shard=20)
    (root / "params.yaml").write_text(
        "seed: 1\ntasks:\n"
        "  - {name: educational, prompt: p.yaml, num_targets: 6, threshold: 3}\n"
        "  - {name: toxic, prompt: t.yaml, num_targets: 3, threshold: 1}\n"
    )
    return root / "data" / "annotations"


def test_interrater_reliability_on_annotate_stage_folders(tmp_path: Path, monkeypatch) -> None:
    annotations = annotate_stage_output(tmp_path)
    monkeypatch.chdir(tmp_path)
    folders = [str(annotations / name) for name in ("alpha", "beta", "gamma")]
    argv = ["interrater_reliability", *folders, "--aggregation", "mean", "--output_file_path", "out.json"]
    assert main([*argv, "--bootstrap_samples", "50"]) == 0
    report = json.loads((tmp_path / "out.json").read_text())
    assert set(report["tasks"]) == {"educational", "toxic"}
    assert report["tasks"]["educational"]["raters"] == ["alpha", "beta", "gamma"]
    assert report["tasks"]["educational"]["label_space"] == {"num_targets": 6, "threshold": 3.0}
    toxic = report["tasks"]["toxic"]["agreement"]
    assert toxic["exact_agreement"] == 1.0 and toxic["krippendorff_alpha_ordinal"] == pytest.approx(1.0)
    assert report["annotations"]["annotators"]["educational"]["alpha"]["valid"] == 60

    assert (
        main(["interrater_reliability", str(annotations), "--task", "educational", "--output_file_path", "g.json"]) == 0
    )
    generations = json.loads((tmp_path / "g.json").read_text())["tasks"]
    assert list(generations) == ["educational"]
    assert generations["educational"]["raters"] == [f"{a}[{g}]" for a in ("alpha", "beta", "gamma") for g in (0, 1)]


def test_gold_rater_single_rater_and_unknown_task_errors(tmp_path: Path, monkeypatch, capsys) -> None:
    annotations = annotate_stage_output(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = ["interrater_reliability", str(annotations), "--aggregation", "mean", "--bootstrap_samples", "0"]
    assert main([*argv, "--gold", "alpha", "--output_file_path", "gold.json"]) == 0
    gold = json.loads((tmp_path / "gold.json").read_text())["tasks"]["educational"]
    assert set(gold["gold"]["raters"]) == {"beta", "gamma"}
    assert gold["agreement"]["raters"] == ["beta", "gamma"]

    write_jsonl(tmp_path / "gold.jsonl", [{"id": f"doc-{i}", "scores": [i % 6, None]} for i in range(10)])
    assert main([*argv, "--gold", "gold.jsonl", "--output_file_path", "file.json"]) == 0
    from_file = json.loads((tmp_path / "file.json").read_text())["tasks"]
    assert from_file["educational"]["gold"]["documents"] == 10
    assert set(from_file["educational"]["gold"]["raters"]) == {"alpha", "beta", "gamma"}
    assert "gold" not in from_file["toxic"]

    single = [str(annotations / "alpha"), "--aggregation", "mean", "--output_file_path", "x.json"]
    assert main(["interrater_reliability", *single]) == 2
    assert "agreement needs at least 2 raters, found 1 (alpha)" in capsys.readouterr().err
    assert main(["interrater_reliability", str(annotations), "--task", "nope", "--output_file_path", "y.json"]) == 2
    assert "--task nope: no such task; tasks: educational, toxic" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("command", ["interrater_reliability", "plot_scores"])
def test_missing_input_is_a_clear_error(tmp_path: Path, monkeypatch, capsys, command: str) -> None:
    monkeypatch.chdir(tmp_path)
    out = ["--output_file_path", "o.json"] if command == "interrater_reliability" else ["--output_dir", "o"]
    assert main([command, "nothing.jsonl", *out]) == 2
    assert "nothing.jsonl: no record files match" in capsys.readouterr().err
