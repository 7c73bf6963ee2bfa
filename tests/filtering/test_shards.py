"""Shard planning, markers and leftovers: the bookkeeping that makes reruns safe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlfilter.errors import MlfilterError
from mlfilter.filtering.shards import (
    ShardStats,
    histogram_edges,
    marker_matches,
    plan_shards,
    relative_names,
    remove_orphans,
)
from mlfilter.records import RecordWriter, expand_inputs


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
    assert jobs[0].output_marker == tmp_path / "out" / "a" / "_part-0.jsonl.zst.done"
    with pytest.raises(MlfilterError, match="must be separate"):
        plan_shards([str(tmp_path / "in")], tmp_path / "out", tmp_path / "out" / "scores")
    with pytest.raises(MlfilterError, match="inside the output folders"):
        plan_shards([str(tmp_path / "in")], tmp_path / "in" / "b", tmp_path / "scores")
    touch_records(tmp_path / "in" / "a" / "part-0.jsonl")
    with pytest.raises(MlfilterError, match="both would write their scores"):
        plan_shards([str(tmp_path / "in")], tmp_path / "out", tmp_path / "scores")


def test_markers_and_orphans_stay_invisible_to_readers_and_are_cleaned(tmp_path: Path) -> None:
    kept = touch_records(tmp_path / "out" / "part-0.jsonl.zst")
    orphan = touch_records(tmp_path / "out" / "part-9.jsonl.zst")
    for data in (kept, orphan):
        data.with_name(f"_{data.name}.done").write_text('{"fingerprint": "abc"}')
    assert expand_inputs([str(tmp_path / "out")]) == [str(kept), str(orphan)], "markers are not record files"
    assert marker_matches(tmp_path / "out" / "_part-0.jsonl.zst.done", "abc")
    assert not marker_matches(tmp_path / "out" / "_part-0.jsonl.zst.done", "abd")
    assert remove_orphans(tmp_path / "out", {kept}) == [orphan]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["_part-0.jsonl.zst.done", "part-0.jsonl.zst"]


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
