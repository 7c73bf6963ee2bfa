"""Inclusion probabilities of a proxy-stratified sample become label weights that split carries unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfilter.labels.build import build_labels
from mlfilter.labels.params import AggregateParams, SplitParams
from mlfilter.labels.split import split_labels
from mlfilter.records import RecordFormatError, ShardedWriter, iter_records
from tests.labels.conftest import annotation, write_annotations


def write_project(tmp_path: Path, probabilities: dict[str, object]) -> tuple[Path, Path]:
    """Documents d0..d3 (d3 without metadata) with ``metadata.inclusion_probability`` and one annotator."""
    with ShardedWriter(tmp_path / "sample", records_per_shard=10) as writer:
        for i in range(4):
            doc = {"id": f"d{i}", "text": f"document number {i} about chemistry", "language": "en"}
            if f"d{i}" in probabilities:
                doc["metadata"] = {"inclusion_probability": probabilities[f"d{i}"], "source": "pool"}
            writer.write(doc)
    write_annotations(
        tmp_path / "annotations",
        "llm",
        [annotation(f"d{i}", "llm", {"educational": [i % 6], "toxic": [0]}) for i in range(4)],
    )
    return tmp_path / "sample", tmp_path / "annotations"


def build(tmp_path: Path, sample: Path, annotations: Path, tasks) -> Path:
    labels = tmp_path / "labels" / "labels.jsonl"
    build_labels(
        annotations=[str(annotations)],
        sample=[str(sample)],
        labels_path=labels,
        gold_path=tmp_path / "labels" / "gold.jsonl",
        tasks=tasks,
        params=AggregateParams(),
    )
    return labels


def test_labels_carry_inverse_inclusion_probabilities_through_split(tmp_path: Path, two_tasks) -> None:
    sample, annotations = write_project(tmp_path, {"d0": 0.25, "d1": 1, "d2": 0.1})
    labels = build(tmp_path, sample, annotations, two_tasks)
    weights = {record["id"]: record.get("weight") for _, record in iter_records(str(labels))}
    assert weights == {"d0": 4.0, "d1": 1.0, "d2": pytest.approx(10.0), "d3": None}

    split_labels(labels=str(labels), out_dir=tmp_path / "splits", tasks=two_tasks, params=SplitParams())
    carried = {
        record["id"]: record.get("weight")
        for name in ("train", "val", "test")
        for _, record in iter_records(str(tmp_path / "splits" / f"{name}.jsonl.zst"))
    }
    assert carried == weights


@pytest.mark.parametrize("bad", [0, 1.5, "half", True])
def test_a_bad_inclusion_probability_names_file_line_and_field(tmp_path: Path, two_tasks, bad: object) -> None:
    sample, annotations = write_project(tmp_path, {"d0": 0.5, "d2": bad})
    with pytest.raises(RecordFormatError, match=r"part-00000\.jsonl\.zst:3: field 'metadata\.inclusion_probability'"):
        build(tmp_path, sample, annotations, two_tasks)
