"""The original tool's annotation files, imported as an annotator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlfilter.annotation.original_format import LabelMapper, read_original_annotations
from mlfilter.annotation.params import AnnotatorParams
from mlfilter.annotation.runner import AnnotationRun, Annotator
from mlfilter.records import RecordFormatError
from tests.annotation.conftest import EDUCATIONAL, read_output

ORIGINAL = [
    {
        "document_id": "1",
        "scores": [3, None, 4.0],
        "explanations": ["… Educational score: 3", "no score here", "… Educational score: 4"],
        "errors": [[], [], []],
        "time_stamps": [1736356424, 1736356424, 1736356424],
        "document_processing_status": ["success", "error_faulty_score", "success"],
        "meta_information": {"prompt_name": "fineweb_edu", "prompt_lang": "en", "model_name": "llama-70b"},
    },
    {
        "document_id": 2,
        "scores": [7, None],
        "explanation": ["Educational score: 7", ""],
        "document_processing_status": ["success", "error_server"],
        "meta_information": {"prompt": "fineweb_edu", "model": "llama-8b"},
    },
    {"document_id": "not-in-sample", "scores": [1], "meta_information": {}},
]


def write_lines(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_import_as_an_annotator(tmp_path: Path, cache_file: Path) -> None:
    imported = write_lines(tmp_path / "original" / "annotations.jsonl", ORIGINAL)
    docs = write_lines(
        tmp_path / "docs.jsonl", [{"id": "1", "text": "a"}, {"id": "2", "text": "b"}, {"id": "3", "text": "c"}]
    )
    params = AnnotatorParams(backend="import", import_paths=(str(imported.parent),), tasks=("educational",))
    report = AnnotationRun(Annotator("original", params, (EDUCATIONAL,)), [str(docs)], cache_file).run(tmp_path / "out")
    first, second = read_output(tmp_path / "out")
    assert first["id"] == "1" and first["annotator"] == "original" and first["model"] == "llama-70b"
    assert first["scores"] == {"educational": [3, None, 4]}
    assert first["status"] == {"educational": ["ok", "no_score", "ok"]}
    assert first["replies"]["educational"][1] == "no score here"
    assert first["prompt"]["educational"] == {"name": "fineweb_edu", "sha256": None, "language": "en"}
    assert second["scores"] == {"educational": [None, None]}
    assert second["status"] == {"educational": ["out_of_range", "request_failed:server"]}
    assert second["model"] == "llama-8b"
    assert report["documents"] == {"seen": 3, "kept": 2, "dropped": {"not_in_import": 1}}
    assert report["imported"] == {"records": 3, "matched": 2, "skipped": {}}


def test_a_bad_original_record_is_named(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [ORIGINAL[0], {"document_id": "9", "scores": {"mean": 2.0}}])
    with pytest.raises(RecordFormatError, match=r"a\.jsonl:2: field 'scores' must be a list"):
        list(read_original_annotations([str(path)]))
    assert len(list(read_original_annotations([str(path)], on_error="skip"))) == 1


def test_scores_on_a_one_based_scale_map_to_labels() -> None:
    mapper = LabelMapper(("1", "2", "3", "4", "5"))
    assert mapper.map(1) == (0, "ok")
    assert mapper.map(4.5) == (3.5, "ok")
    assert mapper.map("5") == (4, "ok")
    assert mapper.map(0) == (None, "out_of_range")
    assert mapper.map(None) == (None, "no_score")
    assert mapper.map(True) == (None, "no_score")
