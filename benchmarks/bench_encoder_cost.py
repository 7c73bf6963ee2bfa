"""What the frozen encoder costs per token: the offline encoders side by side, and the cut layer stack.

Embeds the same real FineWeb-Edu documents through the train stage's own embedder
(:func:`mlfilter.training.run.load_base` and the frozen path's :class:`~mlfilter.training.frozen.Embedder`, an
empty cache each, fp32, one torch thread) with, in one process, in turn:

- ``embedded:all-MiniLM-L6-v2``, its six layers pooled (the cheaper choice);
- ``embedded:SmolLM2-135M-Instruct``, states 10, 15, 20 pooled (the default): the stack is cut to 21 of 30 layers
  (:func:`mlfilter.modeling.drop_layers_above`);
- the same, with the last state pooled as well, so all 30 layers run — the baseline of the cut.

Rates are tokens per CPU-second of this process (a core's worth of work, which holds on a shared machine); the
ratios are against the default. ``--repeats`` runs the three in turn again (noise shows as the spread).

    python benchmarks/bench_encoder_cost.py [PATH] [--docs 48] [--max-length 512] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFILTER_PROGRESS", "0")

import torch
from transformers.utils import logging as hf_logging

from mlfilter.params import TaskParams
from mlfilter.training.frozen import Embedder
from mlfilter.training.params import TrainingParams
from mlfilter.training.run import load_base

DEFAULT_DATA = Path(__file__).parents[1] / ".." / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"
TASK = TaskParams(name="educational", prompt="", num_targets=6, threshold=3)
#: (label, base_model, pooling_layers); the second is params.yaml's default.
ENCODERS = (
    ("MiniLM-L6, 6 states", "embedded:all-MiniLM-L6-v2", (-6, -5, -4, -3, -2, -1)),
    ("SmolLM2-135M, states 10 15 20 (default)", "embedded:SmolLM2-135M-Instruct", (10, 15, 20)),
    ("SmolLM2-135M, + last state (uncut)", "embedded:SmolLM2-135M-Instruct", (10, 15, 20, -1)),
)


def tokens_per_cpu_second(texts: list[str], base_model: str, layers: tuple[int, ...], max_length: int) -> tuple:
    """(tokens per CPU-second, layers run, tokens, wall seconds) of embedding ``texts`` once, cache empty."""
    with tempfile.TemporaryDirectory() as cache:
        params = TrainingParams(
            base_model=base_model,
            pooling="mean",
            pooling_layers=layers,
            max_length=max_length,
            embedding_cache_dir=cache,
        )
        model, tokenizer = load_base(params, (TASK,))
        embedder = Embedder(
            model, tokenizer, cache_dir=cache, max_length=max_length, batch_size=params.batch_size, precision="fp32"
        )
        cpu, wall = time.process_time(), time.perf_counter()
        _, stats = embedder.embed(texts)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return stats.tokens / cpu, model.encoder.config.num_hidden_layers, stats.tokens, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--docs", type=int, default=48)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    lines = args.path.read_text(encoding="utf-8").splitlines()[: args.docs]
    texts = [json.loads(line)["text"] for line in lines]
    print(f"{len(texts)} FineWeb-Edu documents, up to {args.max_length} tokens, fp32, one torch thread")
    for repeat in range(args.repeats):
        rates = {}
        for label, base_model, layers in ENCODERS:
            rate, kept, tokens, wall = tokens_per_cpu_second(texts, base_model, layers, args.max_length)
            rates[label] = rate
            print(
                f"run {repeat + 1}  {label:40s} {kept:2d} layers run  {rate:7.0f} tokens per CPU-second  "
                f"({tokens} tokens, {wall:.1f} s wall)",
                flush=True,
            )
        default = rates[ENCODERS[1][0]]
        print(
            f"run {repeat + 1}  cost per token against the default: "
            + ", ".join(f"{label} {default / rate:.2f}x" for label, rate in rates.items())
        )


if __name__ == "__main__":
    main()
