"""``mlfilter interrater_reliability`` on the original tool's files and ours together, without a params file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlfilter.cli import main
from tests.evaluation.helpers import annotation, original, write_annotations, write_jsonl

DOCS = 40
#: The original tool's per-generation statuses for the null scores of the original-format file.
NULL_STATUSES = ("error_faulty_score", "error_server")


def write_mixed(root: Path, original_prompt: str, tasks: tuple[str, ...] = ("educational",)) -> list[str]:
    """Two annotators of ours (``alpha``, ``beta``: folders of part files, ``<task>_v1`` prompts) and one
    original-format file (``llama``, prompt ``original_prompt``) with some null scores and their statuses."""
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 6, DOCS)
    inputs = []
    for annotator in ("alpha", "beta"):
        records = []
        for i in range(DOCS):
            scores = {task: [int(np.clip(truth[i] + rng.integers(-1, 2), 0, 5))] for task in tasks}
            records.append(annotation(f"doc-{i}", annotator, scores))
        inputs.append(str(write_annotations(root / "annotations", annotator, records, per_shard=15)))
    rows = []
    for i in range(DOCS):
        scores: list[int | None] = [int(np.clip(truth[i] + rng.integers(-1, 2), 0, 5)) for _ in range(2)]
        statuses = ["success", "success"]
        if i % 5 == 0:
            scores[1], statuses[1] = None, NULL_STATUSES[(i // 5) % 2]
        row = original(f"doc-{i}", scores, "llama", prompt=original_prompt)
        rows.append({**row, "document_processing_status": statuses})
    inputs.append(str(write_jsonl(root / "llama.jsonl", rows)))
    return inputs


def run(tmp_path: Path, inputs: list[str], *extra: str) -> dict:
    argv = ["interrater_reliability", *inputs, "--aggregation", "mean", "--bootstrap_samples", "0"]
    assert main([*argv, *extra, "--output_file_path", str(tmp_path / "out.json")]) == 0
    return json.loads((tmp_path / "out.json").read_text())


def test_one_task_and_an_original_file_meet_without_params(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = write_mixed(tmp_path, original_prompt="fineweb_edu")
    report = run(tmp_path, inputs)
    assert list(report["tasks"]) == ["educational"]
    task = report["tasks"]["educational"]
    assert task["raters"] == ["alpha", "beta", "llama"]
    assert {p["documents"] for p in task["agreement"]["pairwise"]} == {DOCS}
    counts = report["annotations"]["annotators"]["educational"]["llama"]
    nulls = [i for i in range(DOCS) if i % 5 == 0]
    expected = {s: sum(NULL_STATUSES[(i // 5) % 2] == s for i in nulls) for s in NULL_STATUSES}
    assert counts["null_by_status"] == expected and counts["invalid_by_reason"] == {"null_score": len(nulls)}
    assert report["annotations"]["annotators"]["educational"]["alpha"]["null_by_status"] == {}


def test_an_original_file_joins_the_task_whose_prompt_it_names(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = write_mixed(tmp_path, original_prompt="educational_v1", tasks=("educational", "toxic"))
    report = run(tmp_path, inputs)
    assert report["tasks"]["educational"]["raters"] == ["alpha", "beta", "llama"]
    assert report["tasks"]["toxic"]["raters"] == ["alpha", "beta"]
    assert report["annotations"]["dropped"] == {}


def test_an_unmatched_prompt_is_counted_and_task_picks_it_up(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = write_mixed(tmp_path, original_prompt="fineweb_edu", tasks=("educational", "toxic"))
    report = run(tmp_path, inputs)
    assert report["annotations"]["dropped"] == {"unknown_task:fineweb_edu": DOCS * 2}
    assert "llama" not in report["tasks"]["educational"]["raters"]

    chosen = run(tmp_path, inputs, "--task", "educational")
    assert list(chosen["tasks"]) == ["educational"]
    assert chosen["tasks"]["educational"]["raters"] == ["alpha", "beta", "llama"]
    assert chosen["annotations"]["dropped"] == {"unknown_task:toxic": DOCS * 2}


def test_params_still_decide_when_present(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = write_mixed(tmp_path, original_prompt="fineweb_edu")
    (tmp_path / "params.yaml").write_text(
        "tasks:\n  - {name: educational, prompt: p.yaml, num_targets: 6, threshold: 3}\n"
        "aggregate:\n  task_names: {fineweb_edu: educational}\n"
    )
    report = run(tmp_path, inputs)
    assert report["tasks"]["educational"]["raters"] == ["alpha", "beta", "llama"]


@pytest.mark.parametrize("aggregation", [[], ["--aggregation", "mean"]])
def test_original_files_alone_keep_the_default_task(tmp_path: Path, monkeypatch, aggregation: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    llama = write_mixed(tmp_path, original_prompt="fineweb_edu")[-1]
    argv = ["interrater_reliability", llama, *aggregation, "--bootstrap_samples", "0", "--output_file_path", "o.json"]
    code = main(argv)
    if aggregation:
        assert code == 2, "one annotator alone has nobody to agree with"
    else:
        assert code == 0
        assert list(json.loads((tmp_path / "o.json").read_text())["tasks"]) == ["score"]
