"""Reading annotation records of both formats into the score table, with every bad record counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlfilter.errors import MlfilterError
from mlfilter.labels.annotations import TaskResolver, parse_scores_record, read_annotations
from mlfilter.labels.params import AggregateParams
from mlfilter.records import RecordFormatError, RecordLocation, RecordWriter
from tests.labels.conftest import annotation, original_record, write_annotations

IDS = {"a": 0, "b": 1, "c": 2}


def table_rows(table) -> set[tuple[str, int, str, float]]:
    names = {v: k for k, v in IDS.items()}
    return {
        (names[int(d)], int(t), table.annotators[int(a)], float(s))
        for d, t, a, s in zip(table.doc, table.task, table.annotator, table.score, strict=True)
    }


def test_reads_our_format_with_generations_nulls_and_two_tasks(tmp_path: Path, two_tasks) -> None:
    write_annotations(tmp_path, "llm-a", [annotation("a", "llm-a", {"educational": [3, None, 2.5], "toxic": [0]})])
    write_annotations(tmp_path, "llm-b", [annotation("b", "llm-b", {"educational": [1], "toxic": [None]})])
    table, annotated, counts = read_annotations([str(tmp_path)], IDS, two_tasks, AggregateParams())
    assert table_rows(table) == {
        ("a", 0, "llm-a", 3.0),
        ("a", 0, "llm-a", 2.5),
        ("a", 1, "llm-a", 0.0),
        ("b", 0, "llm-b", 1.0),
    }
    assert annotated.tolist() == [True, True, False]
    assert counts.records == 2 and counts.used == 2
    assert counts.scores == {"valid": 4, "null_score": 2}
    assert counts.per_annotator["llm-a"] == {"records": 1, "valid": 3, "null_score": 1}


def test_bad_records_are_counted_under_reasons(tmp_path: Path, one_task) -> None:
    records = [
        annotation("a", "llm-a", {"educational": [2, 7, -1, 5]}),  # two out of range, never clipped
        annotation("a", "llm-a", {"educational": [4]}),  # duplicate: the first record wins
        annotation("zzz", "llm-a", {"educational": [1]}),  # not in the sample
        {"id": "b", "annotator": "llm-a", "scores": {"educational": ["3"]}},  # a string score
        {"id": "c", "scores": {"educational": [1]}},  # no annotator
        annotation("b", "llm-a", {"educational": [1], "unknown_task": [1, 2]}),
    ]
    path = write_annotations(tmp_path, "llm-a", records)
    with open(path.parent / "part-00001.jsonl", "wb") as handle:  # a broken line in a second shard
        handle.write(b'{"id": "c", "annotator": "llm-a", "scores": {"educa\n')
    table, annotated, counts = read_annotations([str(tmp_path)], IDS, one_task, AggregateParams())
    assert table_rows(table) == {("a", 0, "llm-a", 2.0), ("a", 0, "llm-a", 5.0), ("b", 0, "llm-a", 1.0)}
    assert counts.records == 7
    assert counts.used == 2
    assert counts.dropped == {
        "duplicate_annotation": 1,
        "unknown_id": 1,
        "invalid_record": 2,
        "invalid_json": 1,
    }
    assert counts.records == counts.used + sum(counts.dropped.values())
    assert counts.scores == {"valid": 3, "out_of_range_score": 2, "unknown_task": 2}
    assert annotated.tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (annotation("a", "llm-a", {"educational": [2, 6]}), r"part-00000.jsonl.zst:1: field 'scores.educational\[1\]'"),
        (annotation("zzz", "llm-a", {"educational": [1]}), r"part-00000.jsonl.zst:1: .*'zzz', which is not in"),
        ({"id": "a", "annotator": "x", "scores": [1]}, r"part-00000.jsonl.zst:1: field 'scores' must be an object"),
        ({"id": "a", "annotator": "x", "scores": {"educational": [True]}}, r":1: field 'scores.educational\[0\]'"),
    ],
)
def test_strict_mode_errors_name_file_line_and_field(tmp_path: Path, one_task, record, message) -> None:
    write_annotations(tmp_path, "llm-a", [record])
    with pytest.raises(MlfilterError, match=message):
        read_annotations([str(tmp_path)], IDS, one_task, AggregateParams(on_bad_annotation="error"))


def test_strict_mode_duplicate_is_an_error(tmp_path: Path, one_task) -> None:
    rec = annotation("a", "llm-a", {"educational": [1]})
    write_annotations(tmp_path, "llm-a", [rec, rec])
    with pytest.raises(MlfilterError, match=r":2: second annotation by 'llm-a' for id 'a'"):
        read_annotations([str(tmp_path)], IDS, one_task, AggregateParams(on_bad_annotation="error"))


def test_reads_original_tool_format(tmp_path: Path, two_tasks) -> None:
    path = tmp_path / "original" / "annotations_edu_en_llama.jsonl"
    with RecordWriter(path) as writer:
        writer.write(original_record("a", [1, 2, None], "llama-70b", prompt="edu"))
        writer.write(original_record("b", [4], "llama-70b", prompt="toxicity_v2"))
        writer.write({"document_id": "c", "scores": [2], "meta_information": {"prompt": "edu", "model": "old-model"}})
    params = AggregateParams(task_names={"edu": "educational", "toxicity_v2": "toxic"})
    table, annotated, counts = read_annotations([str(tmp_path)], IDS, two_tasks, params)
    assert table_rows(table) == {
        ("a", 0, "llama-70b", 1.0),
        ("a", 0, "llama-70b", 2.0),
        ("c", 0, "old-model", 2.0),
    }
    assert counts.scores == {"valid": 3, "null_score": 1, "out_of_range_score": 1}  # toxic has 3 classes
    assert annotated.tolist() == [True, True, True]


def test_original_format_maps_to_the_only_task_and_counts_unknown_prompts(tmp_path: Path, one_task, two_tasks) -> None:
    path = tmp_path / "annotations.jsonl"
    with RecordWriter(path) as writer:
        writer.write(original_record("a", [3, 3], "m", prompt="edu"))
    table, _, _ = read_annotations([str(path)], IDS, one_task, AggregateParams())
    assert table.task.tolist() == [0, 0]
    table, annotated, counts = read_annotations([str(path)], IDS, two_tasks, AggregateParams())
    assert len(table) == 0 and counts.scores == {"unknown_task": 2}
    assert annotated.tolist() == [True, False, False]  # the record was read; it just has no usable task
    with pytest.raises(MlfilterError, match=r"aggregate\.task_names: 'nope' is not a task"):
        read_annotations([str(path)], IDS, one_task, AggregateParams(task_names={"edu": "nope"}))


def test_gold_accepts_label_format_and_pools_records(tmp_path: Path, two_tasks) -> None:
    resolver = TaskResolver(two_tasks)
    parsed = parse_scores_record({"id": 7, "scores": [3, None]}, RecordLocation("g.jsonl", 1), resolver, gold=True)
    assert (parsed.doc_id, parsed.annotator, parsed.scores) == ("7", None, {0: [3.0], 1: [None]})
    with pytest.raises(RecordFormatError, match=r"g\.jsonl:1: field 'annotator' is missing"):
        parse_scores_record({"id": "a", "scores": {"educational": [1]}}, RecordLocation("g.jsonl", 1), resolver)
    gold = tmp_path / "gold.jsonl"
    with RecordWriter(gold) as writer:
        writer.write({"id": "a", "scores": {"educational": 4}})
        writer.write({"id": "a", "scores": {"educational": [2], "toxic": 1}})
    table, _, counts = read_annotations([str(gold)], IDS, two_tasks, AggregateParams(), gold=True)
    assert sorted(zip(table.task.tolist(), table.score.tolist(), strict=True)) == [(0, 2.0), (0, 4.0), (1, 1.0)]
    assert counts.dropped == {}
    assert np.unique(table.doc).tolist() == [0]


def test_aggregate_and_evaluate_read_the_same_files_with_the_same_counts(tmp_path: Path, one_task) -> None:
    from mlfilter.evaluation.ratings import load_ratings

    records = [
        annotation("a", "llm-a", {"educational": [2, None, 9]}),
        annotation("a", "llm-a", {"educational": [4]}),  # duplicate: the first record wins in both stages
        annotation("b", "llm-a", {"educational": [None]}),
        {"id": "c", "annotator": "llm-a", "scores": {"educational": ["3"]}},  # invalid record
    ]
    path = write_annotations(tmp_path, "llm-a", records)
    with open(path.parent / "part-00001.jsonl", "wb") as handle:
        handle.write(b'{"id": "c", "annotator": "llm-a", "scores": {"educa\n{"id": "c", "annotator": "\xff"}\n')
    _, _, aggregate = read_annotations([str(tmp_path)], IDS, one_task, AggregateParams())
    evaluate = load_ratings([str(tmp_path)], one_task, aggregation="mean", on_error="skip")
    dropped = {"duplicate_annotation": 1, "invalid_record": 2, "invalid_json": 1}
    assert aggregate.records == evaluate.records == 6
    assert aggregate.dropped == evaluate.dropped == dropped
    assert aggregate.repaired == evaluate.repaired == {"invalid_utf8_replaced": 1}
    rater = evaluate.counts["educational"]["llm-a"].as_dict()
    assert aggregate.per_annotator["llm-a"] == {"records": 2, "valid": 1, "null_score": 2, "out_of_range_score": 1}
    assert (rater["records"], rater["valid"], rater["invalid_by_reason"]) == (
        2,
        1,
        {"null_score": 2, "out_of_range_score": 1},
    )
    assert rater["null_by_status"] == {"parse_error": 2}
    assert rater["documents_without_valid_score"] == 1
