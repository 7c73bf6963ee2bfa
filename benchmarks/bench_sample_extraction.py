"""Extraction throughput of the sample stage against datatrove's WarcReader + Trafilatura, on one WARC.

Both read the same file in the same process, one after the other, ``--repeats`` times in turn (the
fastest run of each counts, which damps the noise of a shared machine):

- datatrove (baseline): ``WarcReader`` (warcio, cchardet) piped into ``Trafilatura`` — its extractor
  sandbox included, as datatrove runs it — with ``favour_precision=True``, ``deduplicate=True``,
  ``include_comments=False`` (datatrove's defaults) and a 10 s per-page timeout, so no page is cut off;
- mlfilter, trafilatura: ``WarcDocumentReader`` (FastWARC, per-member gzip integrity checks,
  charset handling) with the very same trafilatura settings;
- mlfilter, resiliparse: the same reader with resiliparse's main-content extraction;
- mlfilter, stage worker: the whole per-file work of the stage with trafilatura (extraction, language
  identification, filters, keys, spool to disk).

Printed: wall and CPU seconds (CPU time includes datatrove's extraction subprocess, and is the steadier
measure on a shared machine), documents out, docs/s, and the ratio of datatrove's time to each mlfilter
variant's (> 1 means faster than datatrove). Needs the ``bench`` extra (``pip install -e .[bench]``).

    python benchmarks/bench_sample_extraction.py [--warc data/demo/apache-httpd-docs.warc.gz] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlfilter.sampling.extract import ResiliparseExtractor, TrafilaturaExtractor
from mlfilter.sampling.filters import SampleDocument
from mlfilter.sampling.params import SampleParams, SourceParams
from mlfilter.sampling.readers import WarcDocumentReader
from mlfilter.sampling.sources import InputFile
from mlfilter.sampling.worker import FileSettings, FileTask, process_file

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "apache-httpd-docs.warc.gz"


def datatrove_run(path: Path) -> tuple[int, int]:
    """Documents out of datatrove's WarcReader → Trafilatura, and the records its reader saw."""
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    reader = WarcReader(str(path.parent), glob_pattern=path.name)
    extractor = Trafilatura(favour_precision=True, timeout=10.0)
    documents = sum(1 for _ in extractor.run(reader.run(None, rank=0, world_size=1)))
    return documents, _record_count(path)


def mlfilter_run(path: Path, extractor: TrafilaturaExtractor | ResiliparseExtractor) -> tuple[int, int]:
    """Documents out of mlfilter's WARC reader with ``extractor``, and the records read."""
    reader = WarcDocumentReader(extractor)
    records = documents = 0
    with open(path, "rb") as raw:
        for item in reader.read(raw, str(path)):
            records += 1
            documents += isinstance(item, SampleDocument)
    return documents, records


def stage_worker_run(path: Path, work_dir: str) -> tuple[int, int]:
    """Documents extracted by the stage's per-file worker (all its work included), and records read."""
    params = SampleParams(
        sources=(SourceParams(type="warc", paths=(str(path),)),), targets={"en": 1}, work_dir=work_dir
    )
    settings = FileSettings.from_params(params, seed=0)
    task = FileTask(0, InputFile(str(path), "warc"), settings, os.path.join(work_dir, f"run-{time.time_ns()}"))
    summary = process_file(task)
    return summary.extracted, summary.records


def _record_count(path: Path) -> int:
    from fastwarc.warc import ArchiveIterator

    with open(path, "rb") as raw:
        return sum(1 for _ in ArchiveIterator(raw))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (datatrove extracts in a child process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(run: Callable[[], tuple[int, int]]) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds, documents out and records read of one run."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    documents, records = run()
    return time.perf_counter() - wall, cpu_seconds() - cpu, documents, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warc", type=Path, default=DEMO, help="WARC file to extract (default: the demo corpus)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each engine, in turn; the fastest counts")
    args = parser.parse_args()

    from datatrove.utils.logging import logger

    logger.disable("datatrove")
    TrafilaturaExtractor().extract("<html><body><p>warm up</p></body></html>")  # imports, not timed
    with tempfile.TemporaryDirectory() as work_dir:
        engines: dict[str, Callable[[], tuple[int, int]]] = {
            "datatrove WarcReader + Trafilatura": lambda: datatrove_run(args.warc),
            "mlfilter reader + trafilatura": lambda: mlfilter_run(args.warc, TrafilaturaExtractor()),
            "mlfilter reader + resiliparse": lambda: mlfilter_run(args.warc, ResiliparseExtractor()),
            "mlfilter stage worker (trafilatura)": lambda: stage_worker_run(args.warc, work_dir),
        }
        load_before = os.getloadavg()[0]
        best: dict[str, tuple[float, float, int, int]] = {}
        for _ in range(args.repeats):
            for name, run in engines.items():
                result = timed(run)
                if name not in best or result[1] < best[name][1]:
                    best[name] = result

    print(f"file: {args.warc} ({args.warc.stat().st_size / 2**20:.1f} MiB), best of {args.repeats} (by CPU time)")
    print(f"CPUs: {os.cpu_count()}, load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    header = f"{'engine':<38} {'wall s':>7} {'CPU s':>7} {'docs':>5} {'docs/s':>7} {'docs/CPU-s':>10}"
    print(header + f" {'ratio wall':>10} {'ratio CPU':>9}")
    base_wall, base_cpu, _, _ = best["datatrove WarcReader + Trafilatura"]
    for name, (wall, cpu, documents, _records) in best.items():
        print(
            f"{name:<38} {wall:>7.2f} {cpu:>7.2f} {documents:>5} {documents / wall:>7.1f} {documents / cpu:>10.1f}"
            f" {base_wall / wall:>9.2f}x {base_cpu / cpu:>8.2f}x"
        )
    print("ratio: datatrove's seconds / this engine's seconds on the same file (> 1: faster than datatrove);")
    print("CPU time counts datatrove's extraction subprocess too and is steadier than wall time on a busy machine")


if __name__ == "__main__":
    main()
