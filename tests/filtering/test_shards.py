"""Shard planning, markers and leftovers: the bookkeeping that makes reruns safe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlfilter.errors import MlfilterError
from mlfilter.filtering.shards import (
    ShardStats,
    file_sha256,
    histogram_edges,
    marker_matches,
    marker_path,
    named_scores,
    plan_shards,
    relative_names,
    remove_orphans,
)
from mlfilter.records import RecordWriter


def touch_records(path: Path) -> Path:
    with RecordWriter(path) as writer:
        writer.write({"id": path.name, "text": "x"})
    return path


def test_shard_names_are_relative_to_the_common_folder() -> None:
    assert relative_names(["/data/a/x.jsonl", "/data/b/y/z.parquet"]) == ["a/x.jsonl", "b/y/z.parquet"]
    assert relative_names(["s3://bucket/cc/p-0.jsonl.zst", "s3://bucket/cc/p-1.jsonl.zst"]) == [
        "p-0.jsonl.zst",
        "p-1.jsonl.zst",
    ]
    assert relative_names(["/only/one.jsonl"]) == ["one.jsonl"]


def test_plan_mirrors_input_names_and_refuses_overlapping_folders(tmp_path: Path) -> None:
    touch_records(tmp_path / "in" / "a" / "part-0.jsonl.zst")
    touch_records(tmp_path / "in" / "b" / "part-0.parquet")
    jobs = plan_shards([str(tmp_path / "in")], tmp_path / "out", tmp_path / "scores")
    assert [j.output for j in jobs] == [
        tmp_path / "out" / "a" / "part-0.jsonl.zst",
        tmp_path / "out" / "b" / "part-0.parquet",
    ]
    assert [j.attributes.name for j in jobs] == ["part-0.jsonl.zst", "part-0.jsonl.zst"]
    assert jobs[0].output_marker == tmp_path / ".out.markers" / "a" / "part-0.jsonl.zst.done"
    assert jobs[0].attributes_marker == tmp_path / ".scores.markers" / "a" / "part-0.jsonl.zst.done"
    with pytest.raises(MlfilterError, match="must be separate"):
        plan_shards([str(tmp_path / "in")], tmp_path / "out", tmp_path / "out" / "scores")
    with pytest.raises(MlfilterError, match="inside the output folders"):
        plan_shards([str(tmp_path / "in")], tmp_path / "in" / "b", tmp_path / "scores")
    touch_records(tmp_path / "in" / "a" / "part-0.jsonl")
    with pytest.raises(MlfilterError, match="both would write their scores"):
        plan_shards([str(tmp_path / "in")], tmp_path / "out", tmp_path / "scores")


def test_markers_live_beside_the_folder_vouch_for_the_file_and_orphans_are_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "out"
    kept = touch_records(out / "part-0.jsonl.zst")
    orphan = touch_records(out / "part-9.jsonl.zst")
    legacy = out / "_part-0.jsonl.zst.done"  # where older versions wrote markers
    legacy.write_text("{}")
    for data in (kept, orphan):
        marker = marker_path(out, data)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"fingerprint": "abc", "sha256": file_sha256(data)}))
    assert marker_path(out, kept) == tmp_path / ".out.markers" / "part-0.jsonl.zst.done"
    assert marker_matches(marker_path(out, kept), "abc", kept)
    assert not marker_matches(marker_path(out, kept), "abd", kept)
    assert remove_orphans(out, {kept}) == [orphan]
    assert sorted(p.name for p in out.iterdir()) == ["part-0.jsonl.zst"], "only data in the folder"
    assert [p.name for p in (tmp_path / ".out.markers").iterdir()] == ["part-0.jsonl.zst.done"]
    kept.write_bytes(kept.read_bytes() + b"\n")  # replaced since the marker was written (a checkout, a user)
    assert not marker_matches(marker_path(out, kept), "abc", kept)
    kept.unlink()
    assert not marker_matches(marker_path(out, kept), "abc", kept)


def test_histograms_bin_scores_per_language_with_token_weights() -> None:
    edges = histogram_edges([6], 0.5)
    assert edges[0][0] == 0.0 and edges[0][-1] == 5.0 and len(edges[0]) == 11
    stats = ShardStats(["educational"], edges)
    stats.add(np.asarray([[0.2], [2.5], [2.49], [7.0]]), np.asarray([10, 20, 30, 40]), ["en", "en", None, "en"])
    english = stats.as_dict()["en"]
    assert english["documents"] == 3 and english["tokens"] == 70
    documents = english["histogram"]["educational"]["documents"]
    tokens = english["histogram"]["educational"]["tokens"]
    assert documents[1] == 1 and documents[6] == 1 and documents[-1] == 1
    assert tokens[6] == 20 and tokens[-1] == 40
    assert stats.as_dict()["unknown"]["histogram"]["educational"]["documents"][5] == 1


def test_named_scores_round_half_up_clip_to_the_label_range_and_keep_missing_as_null() -> None:
    fields = named_scores(["edu", "adult", "toxic"], [6, 2, 3], [2.5, 1.7, None])
    assert fields == {
        "edu_score": 2.5,
        "edu_int_score": 3,
        "adult_score": 1.7,
        "adult_int_score": 1,
        "toxic_score": None,
        "toxic_int_score": None,
    }
    assert named_scores(["edu"], [6], [float("nan")]) == {"edu_score": None, "edu_int_score": None}
    assert named_scores(["edu"], [6], [-0.4])["edu_int_score"] == 0
