"""Sample-stage throughput: ``engine: local`` (worker processes) against ``engine: ray`` on the same files.

Both run the whole stage (extraction, language identification, filters, keys, selection, writing) over
the same WARC files in the same process, with the same number of cores, one after the other, ``--repeats``
times in turn (the fastest run of each counts). Ray starts once, before the runs, and its start-up is
printed on its own line. Printed per engine: seconds, documents extracted, documents/s and documents/s per
core; then the ratio of Ray's throughput to the local engine's (the baseline) and Ray's overhead,
``(t_ray - t_local) / t_local``. Needs Ray (``pip install -e .[test]``).

    python benchmarks/bench_sample_ray.py [--warc data/demo/apache-httpd-docs.warc.gz] [--files 6] [--cores 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

from mlfilter.sampling.params import SampleParams, SampleRayParams, SourceParams
from mlfilter.sampling.pipeline import run_sample

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "apache-httpd-docs.warc.gz"


def run(params: SampleParams, root: Path, name: str) -> tuple[float, int]:
    """Seconds and documents extracted of one run, in a fresh work folder."""
    params = dataclasses.replace(params, work_dir=str(root / f"work-{name}"))
    started = time.perf_counter()
    report = run_sample(params, 1, root / name, root / f"{name}.json")
    seconds = time.perf_counter() - started
    shutil.rmtree(root / f"work-{name}", ignore_errors=True)
    return seconds, int(report["documents_extracted"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warc", type=Path, default=DEMO)
    parser.add_argument("--files", type=int, default=6, help="copies of the WARC, one input file each")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--extractor", default="resiliparse", choices=["resiliparse", "trafilatura"])
    args = parser.parse_args()
    os.environ.setdefault("MLFILTER_PROGRESS", "0")
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = []
        for i in range(args.files):
            paths.append(str(root / f"in-{i:03d}.warc.gz"))
            shutil.copyfile(args.warc, paths[-1])
        local = SampleParams(
            sources=(SourceParams(type="warc", paths=tuple(paths)),),
            targets={"en": 100, "fr": 100, "de": 20},
            extractor=args.extractor,
            workers=args.cores,
            retries=0,
        )
        on_ray = dataclasses.replace(local, engine="ray", ray=SampleRayParams())
        started = time.perf_counter()
        ray.init(num_cpus=args.cores, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - started
        best: dict[str, tuple[float, int]] = {}
        try:
            for _ in range(args.repeats):
                for name, params in (("local", local), ("ray", on_ray)):
                    seconds, documents = run(params, root, name)
                    if name not in best or seconds < best[name][0]:
                        best[name] = (seconds, documents)
        finally:
            ray.shutdown()
    setup = f"{args.files} files of {args.warc.name}, extractor {args.extractor}, {args.cores} cores"
    print(f"{setup}, best of {args.repeats}")
    print(f"ray start-up (once per stage run, not in the times below): {startup:.2f} s")
    print(f"{'engine':<8} {'seconds':>8} {'documents':>10} {'docs/s':>9} {'docs/s/core':>12}")
    rates = {}
    for name, (seconds, documents) in best.items():
        rates[name] = documents / seconds
        print(f"{name:<8} {seconds:>8.2f} {documents:>10} {rates[name]:>9.1f} {rates[name] / args.cores:>12.1f}")
    overhead = (best["ray"][0] - best["local"][0]) / best["local"][0]
    print(
        f"ray / local throughput: {rates['ray'] / rates['local']:.2f}x; ray overhead: {overhead:+.1%} of the local time"
    )


if __name__ == "__main__":
    main()
