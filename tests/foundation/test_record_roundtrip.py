"""Property tests: random records through every writer the stages use come back identical.

JSON Lines (plain, gzip, zstandard; ``RecordWriter`` and ``ShardedWriter``) keep records exactly, key order,
``null`` and absent keys included. Parquet is columnar, so an absent key reads back as ``null``: there the
expected records are the written ones with every key seen anywhere (at any depth) filled with ``None``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlfilter.atomic import write_json
from mlfilter.records import RecordFormatError, RecordWriter, ShardedWriter, iter_records

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text()  # any Unicode except lone surrogates (which UTF-8 cannot hold)
KEYS = st.text(min_size=1, max_size=8)

json_values = st.recursive(
    st.none() | st.booleans() | INT64 | FLOATS | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
json_records = st.lists(st.dictionaries(KEYS, json_values, max_size=6), max_size=25)

#: Parquet needs one type per column: each key gets a kind, and values of that kind (or null).
KINDS = {
    "int": INT64,
    "float": FLOATS,
    "text": TEXT,
    "bool": st.booleans(),
    "list": st.lists(TEXT, max_size=3),
    "struct": st.fixed_dictionaries(
        {"label": st.none() | st.integers(0, 5), "note": TEXT},
        optional={"tags": st.lists(st.integers(0, 9), max_size=3), "deep": st.fixed_dictionaries({"x": FLOATS})},
    ),
}


@st.composite
def parquet_records(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Records with per-key kinds, random nulls, keys that first appear late, nested optional fields."""
    count = draw(st.integers(0, 30))
    columns = draw(st.dictionaries(KEYS, st.sampled_from(sorted(KINDS)), min_size=1, max_size=6))
    first_row = {key: draw(st.integers(0, max(count - 1, 0))) for key in columns}
    records = []
    for row in range(count):
        record = {}
        for key, kind in columns.items():
            if row >= first_row[key] and draw(st.booleans() | st.just(True)):
                record[key] = draw(st.none() | KINDS[kind])
        records.append(record)
    return records


def _shape(values: list[Any]) -> dict[str, Any] | list[Any] | None:
    """The union of keys (recursively) of dict values, the item shape of list values; None for scalars."""
    dicts = [v for v in values if isinstance(v, dict)]
    lists = [v for v in values if isinstance(v, list)]
    if dicts:
        keys = list(dict.fromkeys(k for d in dicts for k in d))
        return {k: _shape([d[k] for d in dicts if k in d]) for k in keys}
    if lists:
        return [_shape([item for items in lists for item in items])]
    return None


def _fill(value: Any, shape: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fill(value.get(k), sub) for k, sub in shape.items()}
    if isinstance(value, list):
        return [_fill(v, shape[0]) for v in value]
    return value


def _read(path: Path) -> list[dict[str, Any]]:
    return [record for _, record in iter_records(str(path))]


def _same(a: Any, b: Any) -> bool:
    """Equal in value, type and key order (an int and a float are equal when their values are: 1 == 1.0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and a == b
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
@SETTINGS
@given(records=json_records)
def test_jsonl_writers_round_trip_any_record(tmp_path: Path, suffix: str, records: list[dict[str, Any]]) -> None:
    path = tmp_path / f"records{suffix}"
    with RecordWriter(path) as writer:
        writer.write_many(records)
    assert _same(_read(path), records)

    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example: hypothesis reuses tmp_path
    with ShardedWriter(folder, suffix=suffix, records_per_shard=7) as sharded:
        for record in records:
            sharded.write(record)
    assert len(sharded.shards) == -(-len(records) // 7)
    back = [r for shard in sharded.shards for r in _read(shard)]
    assert _same(back, records)


@SETTINGS
@given(records=parquet_records())
def test_parquet_writer_keeps_late_keys_late_values_and_nested_fields(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "records.parquet"
    shape = _shape(records) or {}
    writer = RecordWriter(path, parquet_batch=4)  # small row groups: late keys arrive in later groups
    writer.write_many(records)
    if records and not shape:
        with pytest.raises(RecordFormatError, match="without any field: Parquet cannot hold them"):
            writer.close()
        return
    writer.close()
    expected = [_fill(record, shape) for record in records]
    assert _same(_read(path), expected)


@SETTINGS
@given(data=st.dictionaries(KEYS, json_values, max_size=6))
def test_write_json_round_trips_strict_json(tmp_path: Path, data: dict[str, Any]) -> None:
    path = tmp_path / "report.json"
    write_json(path, data)

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    assert _same(json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse), data)


def test_write_json_refuses_nan_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        write_json(tmp_path / "report.json", {"spearman": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_parquet_values_of_two_types_in_one_field_name_the_file_and_leave_nothing(tmp_path: Path) -> None:
    path = tmp_path / "mixed.parquet"
    writer = RecordWriter(path, parquet_batch=2)
    writer.write_many([{"id": "a", "year": 2020}, {"id": "b", "year": 2021}, {"id": "c", "year": "unknown"}])
    with pytest.raises(RecordFormatError, match=r"mixed\.parquet: records do not fit one Parquet schema"):
        writer.close()
    assert list(tmp_path.iterdir()) == []
