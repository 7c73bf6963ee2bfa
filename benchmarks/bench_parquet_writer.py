"""What keeping every Parquet field costs: ``RecordWriter`` against the first-batch-schema writer it replaced.

Both write the same records in row groups of 10,000. The baseline infers the schema from the first group's
first row (``pa.Table.from_pylist``) and casts every later group to it — silently dropping keys that appear
later and crashing on a column that is null throughout the first group. mlfilter's writer infers over every
key of every group and widens the file when a later group brings a new key. Printed: records/s of each on
records with a stable schema (where both are correct) and on records with late keys (where only mlfilter
keeps them), and the ratio.

    python benchmarks/bench_parquet_writer.py [--records 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlfilter.records import RecordWriter

BATCH = 10_000


def records(count: int, late: bool) -> list[dict[str, Any]]:
    """FineWeb-like records; with ``late``, ``url`` and ``metadata.quality`` appear after 3 batches."""
    out = []
    for i in range(count):
        metadata: dict[str, Any] = {"source": "CC-MAIN-2024-33", "offset": i * 977}
        record: dict[str, Any] = {"id": f"doc-{i:09d}", "text": f"Document {i}: " + "lorem ipsum dolor " * 12}
        if not late or i >= 3 * BATCH:
            record["url"] = f"https://example.org/{i}"
            metadata["quality"] = {"ratio": i % 7 / 7}
        record["metadata"] = metadata
        out.append(record)
    return out


def first_batch_schema(path: Path, rows: list[dict[str, Any]]) -> None:
    """The replaced writer: schema of the first group, later groups cast to it."""
    writer = None
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        if writer is None:
            table = pa.Table.from_pylist(chunk)
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        else:
            table = pa.Table.from_pylist(chunk, schema=writer.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def mlfilter_writer(path: Path, rows: list[dict[str, Any]]) -> None:
    with RecordWriter(path, parquet_batch=BATCH) as writer:
        writer.write_many(rows)


def timed(function: Any, path: Path, rows: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    function(path, rows)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    print(f"{'records':>8} {'schema':>7} {'writer':>12} {'records/s':>10}  kept url values")
    with tempfile.TemporaryDirectory() as tmp:
        for late in (False, True):
            rows = records(args.records, late)
            results = {}
            for name, function in (("first-batch", first_batch_schema), ("mlfilter", mlfilter_writer)):
                path = Path(tmp) / f"{name}-{late}.parquet"
                seconds = timed(function, path, rows)
                table = pq.read_table(path)
                urls = table.column("url").drop_null().length() if "url" in table.column_names else 0
                results[name] = seconds
                label = "late" if late else "stable"
                print(f"{args.records:>8} {label:>7} {name:>12} {args.records / seconds:>10.0f}  {urls}")
            ratio = results["first-batch"] / results["mlfilter"]
            print(f"{'':>8} {'':>7} {'ratio':>12} {ratio:>9.2f}x  (mlfilter speed / first-batch speed)")


if __name__ == "__main__":
    main()
