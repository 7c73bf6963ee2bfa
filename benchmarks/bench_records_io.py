"""Stream small documents through read → validate → write and show that memory stays flat.

For each corpus size, a fresh process runs mlfilter's streaming path (``read_documents`` →
``RecordWriter``, zstd JSONL in and out), the same with duplicate-id detection on (its memory grows
by the id digests only, ~60 bytes a document), and, side by side, the common load-it-all baseline
(pandas ``read_json(lines=True)`` → ``to_json``). Printed: docs/s, peak RSS and their ratios.

    python benchmarks/bench_records_io.py [--sizes 100000 300000 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlfilter.records import RecordWriter

STREAM = """
from mlfilter.documents import read_documents
from mlfilter.records import RecordWriter
with RecordWriter(dst) as writer:
    for _, doc in read_documents([src], check_duplicates=CHECK):
        writer.write(doc.to_record())
"""
WORKERS = {
    "mlfilter": STREAM.replace("CHECK", "False"),
    "+dup-ids": STREAM.replace("CHECK", "True"),
    "pandas": """
import pandas as pd
frame = pd.read_json(src, lines=True, compression="zstd", dtype={"id": str})
frame.to_json(dst, orient="records", lines=True, compression="zstd", force_ascii=False)
""",
}


def make_corpus(path: Path, count: int) -> None:
    """Write ``count`` small documents (~200 bytes of text each)."""
    with RecordWriter(path) as writer:
        for i in range(count):
            writer.write({"id": f"doc-{i:09d}", "text": f"Document {i}: " + "lorem ipsum dolor sit amet " * 7})


def run_worker(name: str, src: Path, dst: Path) -> tuple[float, float]:
    """Run one worker in a fresh process; return (seconds, peak RSS in MiB)."""
    code = (
        f"src, dst = {str(src)!r}, {str(dst)!r}\n"
        + WORKERS[name]
        + ("\nimport resource, json\nprint(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))")
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, json.loads(out.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    args = parser.parse_args()
    print(f"{'docs':>9} {'engine':>9} {'docs/s':>10} {'peak MiB':>9}  ratios (mlfilter vs pandas)")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            src = Path(tmp) / f"in-{size}.jsonl.zst"
            make_corpus(src, size)
            results = {name: run_worker(name, src, Path(tmp) / f"out-{name}.jsonl.zst") for name in WORKERS}
            for name, (seconds, peak) in results.items():
                print(f"{size:>9} {name:>9} {size / seconds:>10.0f} {peak:>9.0f}")
            (ours_s, ours_mem), (base_s, base_mem) = results["mlfilter"], results["pandas"]
            print(
                f"{'':>9} {'ratio':>9} {base_s / ours_s:>9.2f}x {ours_mem / base_mem:>8.2f}x  (speed-up, memory share)"
            )
    print(f"(benchmark process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
