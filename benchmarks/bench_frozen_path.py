"""Frozen-embedding fast path against re-encoding every epoch, on real FineWeb-Edu documents.

Both runs train the same heads on the same frozen all-MiniLM-L6-v2 for the same epochs (no early
stopping): the fast path embeds train and val once (cold: empty cache; warm: a rerun, as in a
`dvc exp run -S training.learning_rate=...` sweep) and trains the heads on the embeddings; the
baseline is the Trainer path with a frozen base, which runs the encoder on every batch of every
epoch and on the validation split after each. Prints the wall times and their ratios, then the
samples/s of full fine-tuning on the same data.

    python benchmarks/bench_frozen_path.py [PATH] [--docs 200] [--max-length 128] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFILTER_PROGRESS", "0")

from transformers.utils import logging as hf_logging

from mlfilter.params import TaskParams
from mlfilter.training.data import LabeledData
from mlfilter.training.params import TrainingParams
from mlfilter.training.run import train_annotator

DEFAULT_DATA = Path(__file__).parents[1] / ".." / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"
TASKS = (TaskParams(name="educational", prompt="", num_targets=6, threshold=3),)


def load(path: Path, docs: int) -> tuple[LabeledData, LabeledData]:
    """The first ``docs`` documents, 80% train and 20% val in file order."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:docs]]
    texts = [r["text"] for r in rows]
    labels = np.array([[r["scores"]["score"]] for r in rows], dtype=np.float32)
    cut = int(len(rows) * 0.8)

    def part(sl: slice) -> LabeledData:
        return LabeledData(texts=texts[sl], labels=labels[sl], ids=[r["id"] for r in rows[sl]], files=[str(path)])

    return part(slice(0, cut)), part(slice(cut, None))


def timed_run(
    train: LabeledData, val: LabeledData, scratch: Path, name: str, **overrides: object
) -> tuple[float, dict]:
    """Wall seconds of one full training run (model load, embedding or encoding, training, saving)."""
    values = {
        "mode": "frozen",
        "early_stopping_patience": 0,
        "logging_steps": 10,
        "embedding_cache_dir": str(scratch / "embeddings"),
        "checkpoint_dir": str(scratch / "checkpoints"),
    }
    values.update(overrides)
    params = TrainingParams(**values)
    start = time.perf_counter()
    result = train_annotator(
        train, val, params=params, tasks=TASKS, seed=42, output_dir=scratch / name, live_dir=scratch / f"live-{name}"
    )
    return time.perf_counter() - start, result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA, help="FineWeb-Edu annotations JSONL")
    parser.add_argument("--docs", type=int, default=200, help="documents used (80%% train, 20%% val)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per document")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    if not args.path.exists():
        raise SystemExit(f"data not found: {args.path} (pass the path of fineweb-edu-llama3-annotations-1000.jsonl)")
    hf_logging.set_verbosity_error()
    train, val = load(args.path, args.docs)
    print(
        f"data: {args.path.name}, {len(train)} train + {len(val)} val documents, max_length {args.max_length}, "
        f"{args.epochs} epochs, all-MiniLM-L6-v2 frozen, batch 32, CPU threads {os.cpu_count()}"
    )
    common = {"max_length": args.max_length, "num_epochs": args.epochs, "learning_rate": 3e-3}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        cold, cold_summary = timed_run(train, val, scratch, "fast-cold", **common)
        warm, warm_summary = timed_run(train, val, scratch, "fast-warm", **common)
        slow, slow_summary = timed_run(train, val, scratch, "reencode", frozen_fast_path=False, **common)
        embedding = cold_summary["throughput"]["embedding"]
        print(
            f"frozen fast path, cold cache : {cold:8.2f} s  (embedding {embedding['seconds']:.2f} s at "
            f"{embedding['docs_per_second']:.1f} docs/s, {embedding['tokens_per_second']:.0f} tokens/s)"
        )
        print(
            f"frozen fast path, warm cache : {warm:8.2f} s  (embedding cache hits: "
            f"{warm_summary['throughput']['embedding']['cache_hits']})"
        )
        print(f"re-encoding every epoch      : {slow:8.2f} s")
        print(f"speed-up, cold cache         : {slow / cold:8.2f}x")
        print(f"speed-up, warm cache         : {slow / warm:8.2f}x")
        same = {k: round(v, 4) for k, v in cold_summary["val"]["educational"].items()}
        other = {k: round(v, 4) for k, v in slow_summary["val"]["educational"].items()}
        print(f"val metrics, fast path       : {same}")
        print(f"val metrics, re-encoding     : {other}")
        _, tuned = timed_run(
            train,
            val,
            scratch,
            "finetune",
            mode="finetune",
            finetune_max_length=args.max_length,
            finetune_num_epochs=1,
            finetune_learning_rate=3e-5,
            finetune_batch_size=16,
        )
        rate = tuned["throughput"]["train_docs_per_second"]
        print(
            f"full fine-tuning, 1 epoch    : {rate:8.2f} samples/s (batch 16, max_length {args.max_length}, fp32 CPU)"
        )


if __name__ == "__main__":
    main()
