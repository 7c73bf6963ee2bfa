"""The aggregate stage's library end to end: sample + annotations (+ gold) → labels, gold labels, report."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfilter.labels.build import build_labels
from mlfilter.labels.params import AggregateParams
from mlfilter.records import RecordWriter, iter_records
from tests.labels.conftest import annotation, original_record, write_annotations, write_sample

DOCS = [
    ("d1", "Photosynthesis converts light into chemical energy.", "en"),
    ("d2", "Buy cheap watches now!!!", "en"),
    ("d3", "Die Zelle ist die kleinste Einheit des Lebens.", "de"),
    ("d4", "Nobody scored this one.", "en"),
    ("d5", "Only invalid generations here.", "fr"),
    ("d6", "A single valid score.", None),
]


def read(path: Path) -> list[dict]:
    return [record for _, record in iter_records(str(path))]


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    sample = write_sample(tmp_path / "sample", DOCS, per_shard=4)
    root = tmp_path / "annotations"
    write_annotations(
        root,
        "llm-a",
        [
            annotation("d1", "llm-a", {"educational": [4, 5], "toxic": [0, 0]}),
            annotation("d2", "llm-a", {"educational": [0, 1], "toxic": [2, 1]}),
            annotation("d3", "llm-a", {"educational": [3, 3], "toxic": [0, None]}),
            annotation("d5", "llm-a", {"educational": [None, None], "toxic": [None, None]}),
            annotation("d6", "llm-a", {"educational": [2, None], "toxic": [1, None]}),
            annotation("ghost", "llm-a", {"educational": [2], "toxic": [1]}),
        ],
    )
    write_annotations(
        root,
        "llm-b",
        [
            annotation("d1", "llm-b", {"educational": [5], "toxic": [0]}),
            annotation("d2", "llm-b", {"educational": [1], "toxic": [2]}),
            annotation("d3", "llm-b", {"educational": [2], "toxic": [9]}),
            annotation("d3", "llm-b", {"educational": [0], "toxic": [0]}),
        ],
    )
    return sample, root


def build(tmp_path: Path, corpus: tuple[Path, Path], tasks, gold=(), **params) -> dict:
    sample, root = corpus
    return build_labels(
        annotations=[str(root)],
        sample=[str(sample)],
        gold=[str(g) for g in gold],
        labels_path=tmp_path / "labels" / "labels.jsonl",
        gold_path=tmp_path / "labels" / "gold.jsonl",
        tasks=tasks,
        params=AggregateParams(**params),
    )


def test_labels_report_and_accounting(tmp_path: Path, corpus, two_tasks) -> None:
    report = build(tmp_path, corpus, two_tasks)
    labels = read(tmp_path / "labels" / "labels.jsonl")
    assert [r["id"] for r in labels] == ["d1", "d2", "d3", "d6"]
    assert labels[0] == {
        "id": "d1",
        "text": DOCS[0][1],
        "language": "en",
        "scores": [5, 0],  # educational: mean of 4, 5, 5 = 4.67 → 5
        "agreement": {
            "educational": {"n": 3, "std": 0.4714, "range": 1.0, "agreement": 0.6667, "annotators": 2},
            "toxic": {"n": 3, "std": 0.0, "range": 0.0, "agreement": 1.0, "annotators": 2},
        },
    }
    assert labels[1]["scores"] == [1, 2]  # means 0.67 and 1.67
    # d3: llm-b's second record is a duplicate (the first wins); its toxic 9 is out of range, not clipped.
    assert labels[2]["scores"] == [3, 0]
    assert labels[2]["agreement"]["toxic"]["n"] == 1
    assert labels[3]["language"] is None
    assert report["documents"] == {
        "seen": 6,
        "kept": 4,
        "dropped": {"majority_tie": 0, "not_annotated": 1, "too_few_valid_scores": 1},
    }
    assert report["annotations"]["records"] == 10
    assert report["annotations"]["used"] == 8
    assert report["annotations"]["dropped"] == {"unknown_id": 1, "duplicate_annotation": 1, "invalid_record": 0}
    assert report["annotations"]["scores"] == {"valid": 18, "null_score": 7, "out_of_range_score": 1}
    assert report["annotations"]["annotators"]["llm-b"] == {
        "valid": 5,
        "null_score": 0,
        "out_of_range_score": 1,
        "records": 3,
    }
    assert report["tasks"]["educational"]["histogram"] == {"0": 0, "1": 1, "2": 1, "3": 1, "4": 0, "5": 1}
    assert report["tasks"]["toxic"]["histogram"] == {"0": 2, "1": 1, "2": 1}
    assert report["tasks"]["educational"]["dispersion"]["mean_n"] == 2.5
    assert report["tasks"]["educational"]["no_label"] == {"too_few_valid_scores": 1, "majority_tie": 0}  # d5
    assert report["docs_per_second"] > 0
    assert (tmp_path / "labels" / "gold.jsonl").read_bytes() == b""


def test_min_valid_scores_drops_and_missing_task_null_keeps(tmp_path: Path, corpus, two_tasks) -> None:
    report = build(tmp_path, corpus, two_tasks, min_valid_scores=2)
    assert [r["id"] for r in read(tmp_path / "labels" / "labels.jsonl")] == ["d1", "d2"]
    assert report["documents"]["dropped"] == {"majority_tie": 0, "not_annotated": 1, "too_few_valid_scores": 3}
    assert report["tasks"]["toxic"]["no_label"]["too_few_valid_scores"] == 3  # d3 and d6; d5 has none

    report = build(tmp_path, corpus, two_tasks, min_valid_scores=2, missing_task="null")
    labels = read(tmp_path / "labels" / "labels.jsonl")
    assert [r["id"] for r in labels] == ["d1", "d2", "d3"]
    assert labels[2]["scores"] == [3, None]
    assert labels[2]["agreement"]["toxic"] == {"n": 1, "std": 0.0, "range": 0.0, "agreement": None, "annotators": 1}
    assert report["documents"]["dropped"] == {"majority_tie": 0, "not_annotated": 1, "too_few_valid_scores": 2}
    assert report["tasks"]["toxic"]["histogram"] == {"0": 1, "1": 0, "2": 1}


def test_majority_tie_drop_is_counted(tmp_path: Path, corpus, two_tasks) -> None:
    report = build(tmp_path, corpus, two_tasks, method="majority", tie_break="drop", weights={"llm-a": 0.5})
    # With llm-a at 0.5: d1 edu votes 4:0.5, 5:1.5 → 5; d2 edu 0:0.5, 1:1.5 → 1; d2 toxic 2:1.5, 1:0.5 → 2;
    # d3 edu 3:1.0, 2:1.0 → tie → dropped; d6 one vote each.
    labels = read(tmp_path / "labels" / "labels.jsonl")
    assert [r["id"] for r in labels] == ["d1", "d2", "d6"]
    assert report["documents"]["dropped"] == {"majority_tie": 1, "not_annotated": 1, "too_few_valid_scores": 1}
    assert report["tasks"]["educational"]["no_label"]["majority_tie"] == 1


def test_rounding_none_keeps_floats(tmp_path: Path, corpus, two_tasks) -> None:
    build(tmp_path, corpus, two_tasks, rounding="none")
    labels = read(tmp_path / "labels" / "labels.jsonl")
    assert labels[0]["scores"] == [pytest.approx(14 / 3), 0.0]
    assert labels[0]["agreement"]["educational"]["agreement"] == 0.6667  # against the label's nearest class


def test_dawid_skene_labels_carry_confidence(tmp_path: Path, corpus, two_tasks) -> None:
    report = build(tmp_path, corpus, two_tasks, method="dawid_skene")
    labels = read(tmp_path / "labels" / "labels.jsonl")
    assert [r["id"] for r in labels] == ["d1", "d2", "d3", "d6"]
    assert labels[0]["scores"] == [5, 0]
    assert 0.5 < labels[0]["agreement"]["educational"]["confidence"] <= 1.0
    assert report["method"] == "dawid_skene"
    assert "mean_confidence" in report["tasks"]["educational"]["dispersion"]


def test_gold_is_carried_for_labelled_documents(tmp_path: Path, corpus, two_tasks) -> None:
    gold = tmp_path / "gold"
    with RecordWriter(gold / "humans.jsonl") as writer:
        writer.write(original_record("d1", [4, 5], "human", prompt="educational"))  # two raters → 4.5 → 5
        writer.write({"id": "d2", "scores": [1, None]})
        writer.write({"id": "d4", "scores": {"educational": 3}})  # not labelled
        writer.write({"id": "nope", "scores": {"educational": 3}})  # not in the sample
    (gold / "README.md").write_text("not a record file")
    report = build(tmp_path, corpus, two_tasks, gold=[gold])
    assert read(tmp_path / "labels" / "gold.jsonl") == [
        {"id": "d1", "scores": [5, None], "n": [2, 0]},
        {"id": "d2", "scores": [1, None], "n": [1, 0]},
    ]
    assert report["gold"]["documents"] == 3
    assert report["gold"]["written"] == 2
    assert report["gold"]["not_in_labels"] == 1
    assert report["gold"]["no_gold_label"] == 0
    # min_valid_scores is for the annotators: a single reference score still makes a gold label.
    report = build(tmp_path, corpus, two_tasks, gold=[gold], min_valid_scores=3, missing_task="null")
    assert [r["id"] for r in read(tmp_path / "labels" / "gold.jsonl")] == ["d1", "d2"]
    assert report["gold"]["annotations"]["dropped"]["unknown_id"] == 1


def test_empty_gold_folder_means_no_gold(tmp_path: Path, corpus, two_tasks) -> None:
    gold = tmp_path / "gold"
    gold.mkdir()
    (gold / "README.md").write_text("put reference annotations here")
    report = build(tmp_path, corpus, two_tasks, gold=[gold])
    assert report["gold"] == {"inputs": 0}
    assert (tmp_path / "labels" / "gold.jsonl").exists()
    with pytest.raises(FileNotFoundError):
        build(tmp_path, corpus, two_tasks, gold=[tmp_path / "missing"])
