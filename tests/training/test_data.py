"""Reading labelled split files: label lists in task order, missing labels, counted drops, clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlfilter.records import RecordFormatError
from mlfilter.training.data import read_labeled
from mlfilter.training.run import train_from_files
from tests.training.conftest import DIGITS, EDUCATIONAL, write_jsonl


def test_reads_labels_in_task_order_with_missing_ones_as_nan(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"id": "a", "text": "one", "scores": [3, None]},
            {"id": 7, "text": "two", "scores": [0.5, 2]},
            {"id": "c", "text": "   ", "scores": [1, 1]},
            {"id": "d", "text": "four", "scores": [None, None]},
        ],
    )
    data = read_labeled(str(path), (EDUCATIONAL, DIGITS))
    assert data.texts == ["one", "two"]
    assert data.ids == ["a", "7"]
    assert data.labels[0, 0] == 3 and math.isnan(data.labels[0, 1])
    assert data.labels[1].tolist() == [0.5, 2.0]
    assert data.counts.as_dict() == {"seen": 4, "kept": 2, "dropped": {"empty_text": 1, "no_labels": 1}}
    assert data.label_counts(1) == {"2": 1, "missing": 1}


def test_a_bare_number_is_the_label_of_a_single_task(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "x", "score": 4}, {"text": "y", "score": None}])
    data = read_labeled(str(path), (EDUCATIONAL,), label_column="score")
    assert data.labels[:, 0].tolist() == [4.0]
    assert data.counts.dropped == {"no_labels": 1}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"scores": [1, 1]}, "t.jsonl:2: field 'text' is missing"),
        ({"text": 5, "scores": [1, 1]}, "t.jsonl:2: field 'text': expected a string"),
        ({"text": "x"}, "t.jsonl:2: field 'scores' is missing"),
        (
            {"text": "x", "scores": [1]},
            "t.jsonl:2: field 'scores': expected 2 labels (one per task: educational, digits)",
        ),
        ({"text": "x", "scores": 2}, "t.jsonl:2: field 'scores': expected a list of 2 labels"),
        ({"text": "x", "scores": [1, 3]}, "t.jsonl:2: field 'scores[1]' (task digits): expected a number in 0..2"),
        ({"text": "x", "scores": [-1, 0]}, "t.jsonl:2: field 'scores[0]' (task educational)"),
        ({"text": "x", "scores": ["2", 0]}, "t.jsonl:2: field 'scores[0]' (task educational)"),
        ({"text": "x", "scores": [True, 0]}, "t.jsonl:2: field 'scores[0]' (task educational)"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path: Path, record: dict, message: str) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "fine", "scores": [1, 1]}, record])
    with pytest.raises(RecordFormatError) as error:
        read_labeled(str(path), (EDUCATIONAL, DIGITS))
    assert message in str(error.value)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "scores": [1]}\n{"text": \n', encoding="utf-8")
    with pytest.raises(RecordFormatError, match=r"t.jsonl:2: invalid JSON"):
        read_labeled(str(path), (EDUCATIONAL,))


def test_fingerprint_follows_texts_and_labels(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [{"text": "a", "scores": [1]}, {"text": "b", "scores": [2]}])
    same = write_jsonl(tmp_path / "b.jsonl", [{"id": "x", "text": "a", "scores": [1]}, {"text": "b", "scores": [2]}])
    other = write_jsonl(tmp_path / "c.jsonl", [{"text": "a", "scores": [1]}, {"text": "b", "scores": [3]}])
    prints = [read_labeled(str(p), (EDUCATIONAL,)).fingerprint() for p in (first, same, other)]
    assert prints[0] == prints[1] != prints[2]


def test_classification_refuses_fractional_labels_naming_file_line_and_the_rounding_setting(
    tmp_path: Path, tiny_params
) -> None:
    # What aggregate.rounding: none writes when two annotators give 1 and 2, or 3 and 4: halves.
    records = [{"id": str(i), "text": f"document {i}", "scores": [label]} for i, label in enumerate([1, 2, 1.5, 3.5])]
    path = write_jsonl(tmp_path / "splits" / "train.jsonl", records)
    assert read_labeled(str(path), (EDUCATIONAL,)).labels[:, 0].tolist() == [1.0, 2.0, 1.5, 3.5]  # fine for regression
    with pytest.raises(RecordFormatError) as error:
        train_from_files(
            str(path),
            str(path),
            params=tiny_params(is_regression=False),
            tasks=(EDUCATIONAL,),
            seed=1,
            output_dir=tmp_path / "model",
            live_dir=tmp_path / "live",
        )
    message = str(error.value)
    assert f"{path}:3: field 'scores[0]' (task educational)" in message
    assert "1.5" in message and "aggregate.rounding: none" in message
    assert error.value.reason == "fractional_label"
    assert not (tmp_path / "model").exists()
