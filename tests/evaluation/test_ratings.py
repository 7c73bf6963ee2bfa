"""Reading raters' scores: the annotate stage's folders, the original tool's files, aggregation of generations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlfilter.evaluation.ratings import load_languages, load_ratings
from mlfilter.labels.annotations import input_label
from mlfilter.records import RecordFormatError
from tests.evaluation.helpers import annotation, original, write_annotations, write_jsonl, write_records

nan = np.nan


def column(ratings, task: str, rater: str) -> dict[str, float]:
    table = ratings.tables[task]
    values = table.column(rater)
    return {doc: v for doc, v in zip(table.doc_ids, values, strict=True) if not np.isnan(v)}


def test_annotate_stage_folders_with_generations_nulls_and_statuses(tmp_path: Path, two_tasks) -> None:
    root = tmp_path / "annotations"
    write_annotations(
        root,
        "alpha",
        [
            annotation("d1", "alpha", {"educational": [3, 4, 4], "toxic": [0]}),
            annotation("d2", "alpha", {"educational": [None, None, None], "toxic": [1]}, null_status="parse_error"),
            annotation("d3", "alpha", {"educational": [1, 7, None], "toxic": [2]}),
        ],
        per_shard=2,
    )
    write_annotations(
        root, "beta", [annotation("d1", "beta", {"educational": [2]}), annotation("d3", "beta", {"educational": [1]})]
    )
    assert len(list((root / "alpha").glob("part-*.jsonl.zst"))) == 2

    ratings = load_ratings([str(root)], two_tasks, aggregation="mean")
    assert ratings.records == 5
    assert ratings.tables["educational"].raters == ["alpha", "beta"]
    assert column(ratings, "educational", "alpha") == {"d1": pytest.approx(11 / 3), "d3": 1.0}
    assert column(ratings, "educational", "beta") == {"d1": 2.0, "d3": 1.0}
    assert ratings.tables["toxic"].raters == ["alpha"]
    counts = ratings.counts_dict()["annotators"]["educational"]["alpha"]
    assert counts["generations"] == 9 and counts["valid"] == 4 and counts["invalid"] == 5
    assert counts["invalid_by_reason"] == {"null_score": 4, "out_of_range_score": 1}
    assert counts["null_by_status"] == {"parse_error": 4}
    assert counts["documents_without_valid_score"] == 1

    per_generation = load_ratings([str(root / "alpha"), str(root / "beta")], two_tasks, aggregation=None)
    table = per_generation.tables["educational"]
    assert table.raters == ["alpha[0]", "alpha[1]", "alpha[2]", "beta"]
    assert column(per_generation, "educational", "alpha[1]") == {"d1": 4.0}
    assert column(per_generation, "educational", "alpha[2]") == {"d1": 4.0}


@pytest.mark.parametrize(
    ("aggregation", "odd", "tied"),
    [("majority", 3.0, 2.5), ("mean", 2.6, 2.5), ("median", 3.0, 2.5), ("min", 1.0, 1.0), ("max", 4.0, 4.0)],
)
def test_aggregation_of_generations(tmp_path: Path, one_task, aggregation: str, odd: float, tied: float) -> None:
    # m: 1 2 3 3 4 → majority 3, mean 13/5; n: 1 2 2 3 4 3 → 2 and 3 tie, majority gives their mean.
    a = write_jsonl(tmp_path / "a.jsonl", [original("x", [1, 2, 3, 3, 4], "m")])
    b = write_jsonl(tmp_path / "b.jsonl", [original("x", [1, 2, 2, 3, 4, 3], "n")])
    ratings = load_ratings([str(a), str(b)], one_task, aggregation=aggregation)
    assert column(ratings, "educational", "m")["x"] == pytest.approx(odd)
    assert column(ratings, "educational", "n")["x"] == pytest.approx(tied)


def test_original_format_single_file_compares_generations(tmp_path: Path, one_task) -> None:
    path = write_jsonl(
        tmp_path / "data_annotated.jsonl",
        [
            original("1", [2, 1, 2], "test", lang="de"),
            original("2", [4, 2, None], "test", lang="en"),
            original("3", [3, 4, 2], "test", lang="de"),
        ],
    )
    ratings = load_ratings([str(path)], one_task, aggregation=None)
    table = ratings.tables["educational"]
    assert table.raters == ["test[0]", "test[1]", "test[2]"]
    assert table.doc_ids == ["1", "2", "3"]
    np.testing.assert_array_equal(table.values, [[2, 1, 2], [4, 2, nan], [3, 4, 2]])
    assert list(table.languages) == ["de", "en", "de"]


def test_original_format_several_models_in_one_file(tmp_path: Path, one_task) -> None:
    path = write_jsonl(
        tmp_path / "data_annotated.jsonl",
        [
            original("1", [2], "llama"),
            original("1", [3], "mistral"),
            original("2", [4], "llama"),
            original("2", [4], "mistral"),
        ],
    )
    ratings = load_ratings([str(path)], one_task, aggregation=None)
    assert ratings.tables["educational"].raters == ["llama", "mistral"]
    np.testing.assert_array_equal(ratings.tables["educational"].values, [[2, 3], [4, 4]])


def test_one_file_per_annotator_with_the_same_model_name(tmp_path: Path, one_task) -> None:
    a = write_jsonl(tmp_path / "annotations_edu_de_test_1.jsonl", [original("1", [2, 1, 2], "test")])
    b = write_jsonl(tmp_path / "annotations_edu_en_test_1.jsonl", [original("1", [1, 2, 2], "test")])
    ratings = load_ratings([str(a), str(b)], one_task, aggregation="majority")
    assert ratings.tables["educational"].raters == ["test@annotations_edu_de_test_1", "test@annotations_edu_en_test_1"]
    np.testing.assert_array_equal(ratings.tables["educational"].values, [[2, 2]])


def test_files_without_annotator_names_are_named_after_the_file(tmp_path: Path, one_task) -> None:
    a = write_jsonl(
        tmp_path / "human.jsonl", [{"document_id": "1", "scores": [3]}, {"document_id": "2", "scores": [1]}]
    )
    b = write_records(tmp_path / "labels.jsonl.gz", [{"id": "1", "scores": [2]}, {"id": "2", "scores": [None]}])
    ratings = load_ratings([str(a), str(b)], one_task, aggregation="mean")
    assert ratings.tables["educational"].raters == ["human", "labels"]
    np.testing.assert_array_equal(ratings.tables["educational"].values, [[3, 2], [1, nan]])


def test_duplicates_are_counted_and_the_first_wins(tmp_path: Path, one_task) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [original("1", [2], "m"), original("1", [5], "m")])
    ratings = load_ratings([str(path)], one_task, aggregation="mean")
    assert ratings.dropped["duplicate_annotation"] == 1
    assert column(ratings, "educational", "m") == {"1": 2.0}


def test_malformed_records_name_file_line_and_field(tmp_path: Path, one_task) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [original("1", [2], "m"), {"document_id": "2", "scores": ["high"]}])
    with pytest.raises(RecordFormatError, match=r"a\.jsonl:2: field 'scores\[0\]' must be a number or null"):
        load_ratings([str(path)], one_task, aggregation="mean")
    skipped = load_ratings([str(path)], one_task, aggregation="mean", on_error="skip")
    assert skipped.dropped["invalid_record"] == 1 and skipped.records == 2
    path.write_text(path.read_text() + "{not json\n")
    skipped = load_ratings([str(path)], one_task, aggregation="mean", on_error="skip")
    assert skipped.dropped["invalid_json"] == 1 and skipped.records == 3


def test_unknown_tasks_are_counted(tmp_path: Path, two_tasks) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [original("1", [2], "m", prompt="edu")])
    ratings = load_ratings([str(path)], two_tasks, aggregation="mean")
    assert ratings.tables == {}
    assert ratings.dropped["unknown_task:edu"] == 1
    mapped = load_ratings([str(path)], two_tasks, aggregation="mean", task_names={"edu": "educational"})
    assert column(mapped, "educational", "m") == {"1": 2.0}


def test_languages_from_documents_override_records(tmp_path: Path, one_task) -> None:
    sample = write_records(
        tmp_path / "sample" / "part-00000.jsonl.zst",
        [{"id": "1", "text": "a", "language": "fr"}, {"id": "9", "text": "b", "language": "es"}],
    )
    languages = load_languages([str(sample.parent)])
    assert languages == {"1": "fr", "9": "es"}
    path = write_jsonl(tmp_path / "a.jsonl", [original("1", [2], "m", lang="de"), original("2", [2], "m")])
    ratings = load_ratings([str(path)], one_task, aggregation="mean", languages=languages)
    assert list(ratings.tables["educational"].languages) == ["fr", "en"]


def test_input_label() -> None:
    assert input_label("data/annotations/alpha/") == "alpha"
    assert input_label("runs/a.jsonl.zst") == "a"
    assert input_label("b.parquet") == "b"
