"""Throughput and memory of the aggregate and split stages against the usual hand-rolled way.

Corpus: real FineWeb-Edu texts (``../shared/data``, ODC-BY; cycled, each copy made unique) as the
sample, and three annotators with three generations each whose scores scatter around the real
Llama-3-70B score (2 % null). Each engine runs in a fresh process, ``--repeats`` times in turn (the
fastest run counts, which damps the noise of a shared machine); printed: docs/s, peak RSS, ratios.

- aggregate, mlfilter: ``build_labels`` (streams the sample twice, vectorized per-task aggregation),
  writing zstd labels as the pipeline does
  with ``mean``, ``majority`` and ``dawid_skene``.
- aggregate, baseline: the original tool's way — ``json.loads`` per line into a dict of score
  lists, ``statistics.mean`` per document, the sample loaded into a dict to join the text.
- split, mlfilter: ``split_labels`` (hash of the normalized text).
- split, baseline: pandas ``read_json`` (of the same zstd labels) + scikit-learn
  ``train_test_split(stratify=...)`` twice.

    python benchmarks/bench_aggregate_split.py [--docs 200000] [--repeats 3] [--source PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlfilter.records import RecordWriter, ShardedWriter

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"
ANNOTATORS = ("llm-a", "llm-b", "llm-c")
GENERATIONS = 3

PARAMS = """
from mlfilter.labels.params import AggregateParams, SplitParams
from mlfilter.params import TaskParams
tasks = (TaskParams("educational", "prompts/educational_v1.yaml", 6, 3),)
"""
AGGREGATE = (
    PARAMS
    + """
from mlfilter.labels.build import build_labels
build_labels(annotations=[f"{tmp}/annotations"], sample=[f"{tmp}/sample"], labels_path=f"{tmp}/labels.jsonl.zst",
             gold_path=f"{tmp}/gold.jsonl.zst", tasks=tasks, params=AggregateParams(method=METHOD))
"""
)
BASELINE_AGGREGATE = """
import glob, io, json, statistics, zstandard
def lines(path):
    with open(path, "rb") as raw:
        yield from io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8")
scores = {}
for path in sorted(glob.glob(f"{tmp}/annotations/*/*.jsonl.zst")):
    for line in lines(path):
        record = json.loads(line)
        valid = [s for s in record["scores"]["educational"] if s is not None]
        scores.setdefault(record["id"], []).extend(valid)
sample = {}
for path in sorted(glob.glob(f"{tmp}/sample/*.jsonl.zst")):
    for line in lines(path):
        doc = json.loads(line)
        sample[doc["id"]] = doc
with open(f"{tmp}/labels-baseline.jsonl", "w", encoding="utf-8") as out:
    for doc_id, doc in sample.items():
        values = scores.get(doc_id)
        if values:
            label = int(statistics.mean(values) + 0.5)
            out.write(json.dumps({"id": doc_id, "text": doc["text"], "language": doc["language"],
                                  "scores": [label]}, ensure_ascii=False) + "\\n")
"""
SPLIT = (
    PARAMS
    + """
from mlfilter.labels.split import split_labels
split_labels(labels=f"{tmp}/labels.jsonl.zst", out_dir=f"{tmp}/splits", tasks=tasks, params=SplitParams())
"""
)
BASELINE_SPLIT = """
import pandas as pd
from sklearn.model_selection import train_test_split
frame = pd.read_json(f"{tmp}/labels.jsonl.zst", lines=True, dtype={"id": str})
strata = frame["language"].astype(str) + "|" + frame["scores"].map(str)
counts = strata.map(strata.value_counts())
strata = strata.where(counts >= 10, strata.mode()[0])
train, rest = train_test_split(frame, test_size=0.2, stratify=strata, random_state=42)
val, test = train_test_split(rest, test_size=0.5, stratify=strata.loc[rest.index], random_state=42)
for name, part in (("train", train), ("val", val), ("test", test)):
    part.to_json(f"{tmp}/baseline-{name}.jsonl", orient="records", lines=True, force_ascii=False)
"""


def make_corpus(tmp: Path, docs: int, source: Path) -> None:
    """The sample (real texts, cycled and made unique) and three annotators' records."""
    real = [json.loads(line) for line in source.open(encoding="utf-8")]
    rng = random.Random(0)
    with ShardedWriter(tmp / "sample", records_per_shard=50_000) as sample:
        for i in range(docs):
            doc = real[i % len(real)]
            sample.write({"id": f"doc-{i}", "text": f"{doc['text']}\n#{i}", "language": "en", "url": "https://x"})
    for annotator in ANNOTATORS:
        with RecordWriter(tmp / "annotations" / annotator / "part-00000.jsonl.zst") as writer:
            for i in range(docs):
                truth = real[i % len(real)]["scores"]["score"]
                scores = [
                    None if rng.random() < 0.02 else min(5, max(0, truth + rng.choice((-1, 0, 0, 0, 1))))
                    for _ in range(GENERATIONS)
                ]
                writer.write({"id": f"doc-{i}", "annotator": annotator, "scores": {"educational": scores}})


def run_worker(code: str, tmp: Path) -> tuple[float, float]:
    """Run one engine in a fresh process; return (seconds, peak RSS in MiB)."""
    script = (
        f"tmp = {str(tmp)!r}\n"
        + code
        + ("\nimport resource, json\nprint(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))")
    )
    start = time.perf_counter()
    env = {"MLFILTER_PROGRESS": "0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return time.perf_counter() - start, json.loads(result.stdout.strip().splitlines()[-1]) / 1024


def report(title: str, docs: int, results: dict[str, tuple[float, float]], ours: str, baseline: str) -> None:
    print(f"\n{title}: {docs} documents")
    print(f"{'engine':>24} {'docs/s':>10} {'seconds':>8} {'peak MiB':>9}")
    for name, (seconds, peak) in results.items():
        print(f"{name:>24} {docs / seconds:>10.0f} {seconds:>8.1f} {peak:>9.0f}")
    (ours_s, ours_mem), (base_s, base_mem) = results[ours], results[baseline]
    print(
        f"{'ratio ' + ours + ' vs baseline':>24} {base_s / ours_s:>9.2f}x {'':>8} {ours_mem / base_mem:>8.2f}x"
        "  (speed-up, memory share)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine; the fastest counts")
    parser.add_argument("--source", type=Path, default=SOURCE, help="FineWeb-Edu annotations JSONL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        start = time.perf_counter()
        make_corpus(tmp, args.docs, args.source)
        print(
            f"corpus: {args.docs} documents × {len(ANNOTATORS)} annotators × {GENERATIONS} generations "
            f"({time.perf_counter() - start:.0f} s to write)"
        )
        engines = {
            "baseline (orig. style)": BASELINE_AGGREGATE,
            **{f"mlfilter {m}": AGGREGATE.replace("METHOD", repr(m)) for m in ("mean", "majority", "dawid_skene")},
            "baseline (sklearn)": BASELINE_SPLIT,
            "mlfilter hash": SPLIT,
        }
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeats):
            for name, code in engines.items():
                seconds, peak = run_worker(code, tmp)
                previous = best.get(name, (float("inf"), 0.0))
                best[name] = (min(previous[0], seconds), max(previous[1], peak))
        aggregate = {name: best[name] for name in list(engines)[:4]}
        report("aggregate", args.docs, aggregate, "mlfilter mean", "baseline (orig. style)")
        split = {name: best[name] for name in list(engines)[4:]}
        report("split", args.docs, split, "mlfilter hash", "baseline (sklearn)")


if __name__ == "__main__":
    main()
