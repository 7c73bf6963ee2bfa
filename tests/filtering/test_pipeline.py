"""The whole filter run on the local engine: outputs, keep rules, reruns, partial shards, corrupt shards."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlfilter.cli import main as cli_main
from mlfilter.errors import MlfilterError
from mlfilter.filtering.engine import score_texts
from mlfilter.filtering.params import KeepParams
from mlfilter.filtering.pipeline import read_model_tasks, run_filter
from mlfilter.records import RecordWriter
from mlfilter.scores import at_or_above
from tests.filtering.conftest import TEST_SCORING, file_bytes, filter_params, read_folder, write_shards

SHARDS = ["part-00000.jsonl.zst", "part-00001.jsonl", "part-00002.parquet"]


@pytest.fixture
def corpus(tmp_path: Path, documents: list[dict[str, Any]]) -> Path:
    """46 documents in three shards of three formats; the JSONL one also holds two bad records."""
    folder = tmp_path / "corpus"
    write_shards(folder, documents, [".jsonl.zst", ".jsonl", ".parquet"])
    with open(folder / "part-00001.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"id": "broken", "text": \n')
        handle.write(json.dumps({"id": "no-text", "language": "en"}) + "\n")
    return folder


def run(tmp_path: Path, params: Any, name: str = "run") -> dict[str, Any]:
    root = tmp_path / name
    return run_filter(
        params, output=root / "filtered", attributes=root / "scores", reports=root / "reports", task_thresholds={}
    )


def attribute_records(folder: Path) -> list[dict[str, Any]]:
    return [record for records in read_folder(folder).values() for record in records]


def test_threshold_run_keeps_documents_at_or_above_the_threshold_with_their_scores(
    tmp_path: Path, corpus: Path, model_dir: Path, loaded: tuple[Any, Any], documents: list[dict[str, Any]]
) -> None:
    keep = KeepParams(rule="threshold", thresholds={"educational": 2.5})
    metrics = run(tmp_path, filter_params(corpus, model_dir, keep=keep))

    outputs = read_folder(tmp_path / "run" / "filtered")
    assert list(outputs) == SHARDS
    attributes = attribute_records(tmp_path / "run" / "scores")
    assert [a["id"] for a in attributes] == [d["id"] for d in documents], "every valid document, in input order"
    model, tokenizer = loaded
    expected = score_texts(model, tokenizer, [d["text"] for d in documents], max_length=TEST_SCORING.max_length)
    np.testing.assert_allclose([a["scores"] for a in attributes], expected, atol=1e-4)

    # A classification model: each document's label is its head's most probable class (argmax), which the
    # threshold rule and int_score use; the score stays the expected value.
    expected_labels = _argmax_labels(model, tokenizer, [d["text"] for d in documents], TEST_SCORING.max_length)
    assert [a["labels"] for a in attributes] == expected_labels
    kept_ids = [a["id"] for a in attributes if a["labels"][0] >= 2.5]
    assert 0 < len(kept_ids) < len(documents)
    kept = [record for records in outputs.values() for record in records]
    assert [r["id"] for r in kept] == kept_ids
    originals = {d["id"]: d for d in documents}
    by_id = {a["id"]: a for a in attributes}
    task_names, _, _ = read_model_tasks(str(model_dir))
    for record in kept:
        scores = record.pop("scores")
        assert scores == by_id[record["id"]]["scores"]
        for name, score, label in zip(task_names, scores, by_id[record["id"]]["labels"], strict=True):
            assert record.pop(f"{name}_score") == score
            assert record.pop(f"{name}_int_score") == label
        assert {k: v for k, v in record.items() if v is not None} == originals[record["id"]], "record unchanged"

    dropped = len(documents) - len(kept_ids)
    assert metrics["documents"] == {
        "in": 48,
        "kept": len(kept_ids),
        "dropped": {"below_threshold": dropped, "invalid_json": 1, "missing_field": 1},
    }
    assert metrics["tokens"]["in"] == sum(a["tokens"] for a in attributes)
    assert metrics["tokens"]["kept"] == sum(by_id[i]["tokens"] for i in kept_ids)
    assert metrics["languages"]["de"]["documents"] == 8
    assert metrics["shards"] == {"total": 3, "scored": 3, "reused": 0, "filtered": 3, "failed": 0}
    assert metrics["throughput"]["docs_per_s"] > 0 and metrics["throughput"]["documents_scored"] == 46

    reports = tmp_path / "run" / "reports"
    assert json.loads((reports / "metrics.json").read_text()) == metrics
    with open(reports / "score_histogram.csv", encoding="utf-8") as handle:
        histogram = list(csv.DictReader(handle))
    assert sum(int(r["documents"]) for r in histogram if r["task"] == "educational") == 46
    with open(reports / "threshold_sweep.csv", encoding="utf-8") as handle:
        sweep = list(csv.DictReader(handle))
    at = {(r["task"], r["language"], float(r["raw_cut"])): r for r in sweep}
    assert int(at[("educational", "all", 2.5)]["documents"]) == len(kept_ids)
    assert int(at[("educational", "all", 2.5)]["tokens"]) == metrics["tokens"]["kept"]
    assert int(at[("educational", "de", 0.0)]["documents"]) == 8


def test_rerun_reuses_finished_shards_and_a_new_keep_rule_rescores_nothing(
    tmp_path: Path, corpus: Path, model_dir: Path
) -> None:
    params = filter_params(corpus, model_dir, keep=KeepParams(rule="threshold", thresholds={"educational": 2.5}))
    first = run(tmp_path, params)
    before = file_bytes(tmp_path / "run")
    again = run(tmp_path, params)
    assert again["shards"] == {"total": 3, "scored": 0, "reused": 3, "filtered": 0, "failed": 0}
    assert again["documents"] == first["documents"]
    after = file_bytes(tmp_path / "run")
    assert {k: v for k, v in after.items() if not k.startswith("reports")} == {
        k: v for k, v in before.items() if not k.startswith("reports")
    }

    stricter = run(tmp_path, dataclasses.replace(params, keep=KeepParams(thresholds={"educational": 3.0})))
    assert stricter["shards"]["scored"] == 0 and stricter["shards"]["filtered"] == 3
    scores = attribute_records(tmp_path / "run" / "scores")
    assert stricter["documents"]["kept"] == int(at_or_above(np.asarray([a["scores"][0] for a in scores]), 3.0).sum())


def test_a_partial_shard_is_redone_cleanly(tmp_path: Path, corpus: Path, model_dir: Path) -> None:
    params = filter_params(corpus, model_dir)
    run(tmp_path, params)
    done = {k: v for k, v in file_bytes(tmp_path / "run").items() if not k.startswith("reports")}
    # What a kill in the middle of shard 1 leaves: markers not yet written, a half file, a temp file.
    for folder, name in (("scores", "part-00001.jsonl.zst"), ("filtered", "part-00001.jsonl")):
        (tmp_path / "run" / f".{folder}.markers" / f"{name}.done").unlink()
        (tmp_path / "run" / folder / name).write_bytes(b'{"id": "fwe-')
        (tmp_path / "run" / folder / f".{name}.tmp-4242").write_bytes(b"partial")
    metrics = run(tmp_path, params)
    assert metrics["shards"] == {"total": 3, "scored": 1, "reused": 2, "filtered": 1, "failed": 0}
    redone = {k: v for k, v in file_bytes(tmp_path / "run").items() if not k.startswith("reports")}
    assert redone == done


def test_quantile_and_token_budget_keep_exactly_their_share_per_language(
    tmp_path: Path, corpus: Path, model_dir: Path
) -> None:
    run(tmp_path, filter_params(corpus, model_dir))
    scores = attribute_records(tmp_path / "run" / "scores")
    by_language: dict[str, list[dict[str, Any]]] = {}
    for record in scores:
        by_language.setdefault(record["language"], []).append(record)

    metrics = run(tmp_path, filter_params(corpus, model_dir, keep=KeepParams(rule="quantile", fraction=0.25)))
    assert metrics["shards"]["scored"] == 0
    kept = {r["id"] for records in read_folder(tmp_path / "run" / "filtered").values() for r in records}
    for records in by_language.values():
        ranked = sorted(records, key=lambda r: -r["scores"][0])
        count = math.floor(0.25 * len(records))
        assert {r["id"] for r in records} & kept == {r["id"] for r in ranked[:count]}
    assert metrics["documents"]["dropped"]["below_quantile"] == 46 - (7 + 2 + 2)

    keep = KeepParams(rule="token_budget", fraction=0.3, rank_by="style")
    metrics = run(tmp_path, filter_params(corpus, model_dir, keep=keep))
    kept = {r["id"] for records in read_folder(tmp_path / "run" / "filtered").values() for r in records}
    for language, records in by_language.items():
        ranked = sorted(records, key=lambda r: -r["scores"][1])
        budget = 0.3 * sum(r["tokens"] for r in records)
        prefix = 0
        while prefix < len(ranked) and sum(r["tokens"] for r in ranked[: prefix + 1]) <= budget:
            prefix += 1
        assert {r["id"] for r in records} & kept == {r["id"] for r in ranked[:prefix]}, language
        assert metrics["languages"][language]["kept_tokens"] <= budget
    assert metrics["keep_rule"]["rank_by"] == "style"


def _truncated_shard(path: Path, documents: list[dict[str, Any]]) -> None:
    with RecordWriter(path) as writer:
        writer.write_many(documents)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_corrupt_shard_is_reported_while_the_others_complete(
    tmp_path: Path, corpus: Path, model_dir: Path, documents: list[dict[str, Any]]
) -> None:
    _truncated_shard(corpus / "part-00003.jsonl.gz", [{**d, "id": f"copy-{d['id']}"} for d in documents])
    params = filter_params(corpus, model_dir)
    with pytest.raises(MlfilterError, match=r"1 of 4 shard\(s\) failed.*part-00003\.jsonl\.gz: corrupt or truncated"):
        run(tmp_path, params)
    outputs = read_folder(tmp_path / "run" / "filtered")
    assert list(outputs) == SHARDS and sum(len(v) for v in outputs.values()) == 46
    for name in SHARDS:
        assert (tmp_path / "run" / ".filtered.markers" / f"{name}.done").is_file()
    metrics = json.loads((tmp_path / "run" / "reports" / "metrics.json").read_text())
    assert [f["shard"] for f in metrics["failed_shards"]] == [str(corpus / "part-00003.jsonl.gz")]

    skipped = run(tmp_path, dataclasses.replace(params, on_bad_shard="skip"))
    assert skipped["shards"]["failed"] == 1 and skipped["shards"]["scored"] == 0
    assert skipped["documents"]["kept"] == 46
    assert skipped["documents"]["in"] == 48 + skipped["documents"]["dropped"]["failed_shard"]


def test_cpu_worker_pool_gives_the_same_output(tmp_path: Path, corpus: Path, model_dir: Path) -> None:
    params = filter_params(corpus, model_dir)
    single = run(tmp_path, params, "single")
    pooled = run(tmp_path, dataclasses.replace(params, workers=2), "pooled")
    assert pooled["documents"] == single["documents"]
    one = attribute_records(tmp_path / "single" / "scores")
    two = attribute_records(tmp_path / "pooled" / "scores")
    assert [r["id"] for r in one] == [r["id"] for r in two]
    np.testing.assert_allclose([r["scores"] for r in one], [r["scores"] for r in two], atol=1e-4)


def _argmax_labels(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Each text's most probable class per task, one text at a time through the model's own forward pass."""
    import torch

    rows = []
    with torch.inference_mode():
        for text in texts:
            logits = model(**tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")).logits[0]
            parts = torch.split(logits.float().cpu(), list(model.config.num_targets_per_task))
            rows.append([int(part.argmax()) for part in parts])
    return rows


def test_command_line_filter(tmp_path: Path, corpus: Path, model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    output = tmp_path / "out"
    code = cli_main(
        [
            "filter",
            "--model",
            str(model_dir),
            "--input",
            str(corpus / "*.jsonl*"),
            "--output",
            str(output),
            "--threshold",
            "educational=2.5",
            "--threshold",
            "style=0.5",
            "--max-length",
            "96",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["documents"]["in"] == 34
    labels = {r["id"]: r["labels"] for r in attribute_records(tmp_path / "out-scores")}
    kept = [r["id"] for records in read_folder(output).values() for r in records]
    assert list(read_folder(output)) == SHARDS[:2]
    assert kept == [i for i, s in labels.items() if s[0] >= 2.5 and s[1] >= 0.5]  # argmax labels of the heads


def test_missing_model_and_unknown_task_fail_before_any_work(tmp_path: Path, corpus: Path, model_dir: Path) -> None:
    with pytest.raises(MlfilterError, match="no saved model"):
        run(tmp_path, filter_params(corpus, tmp_path / "nowhere"))
    with pytest.raises(MlfilterError, match="no task 'toxic'"):
        run(tmp_path, filter_params(corpus, model_dir, keep=KeepParams(thresholds={"toxic": 1.0})))
    assert not (tmp_path / "run").exists()
    shutil.rmtree(corpus)
