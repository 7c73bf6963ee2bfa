"""The embedded annotator's forward pass in bfloat16 against float32, on real FineWeb-Edu documents.

transformers warns, when the SmolLM2 GGUF file is loaded in bfloat16, that packed GGUF weights are fastest in
float32. This measures what the local backend runs: one forward pass over a batch of prompts (the logprobs
score mode reads the next-token distribution from exactly that), with the model as ``resolve_model`` gives it
(the GGUF converted once into plain weights) in float32 and in bfloat16 — ``dtype: auto`` picks bfloat16 on
CPUs with native bfloat16 (AVX512-BF16, AMX) — and the GGUF file loaded as it ships, in both dtypes. Prints
each median time per batch and the ratios against float32, side by side.

    python benchmarks/bench_embedded_llm_dtype.py [PATH] [--docs 8] [--tokens 384] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mlfilter.annotation.backends.local import resolve_dtype
from mlfilter.embedded import EMBEDDED_LLM, resolve_model, smollm2_gguf
from mlfilter.logs import quiet_model_loading

DEFAULT_DATA = Path(__file__).parents[1] / ".." / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"


def batch(path: Path, docs: int, tokens: int, tokenizer: Any) -> dict[str, torch.Tensor]:
    """The first ``docs`` documents as one padded batch of at most ``tokens`` tokens each."""
    with path.open(encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for _, line in zip(range(docs), handle, strict=False)]
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer(texts, truncation=True, max_length=tokens, padding=True, return_tensors="pt")


def median_seconds(model: Any, inputs: dict[str, torch.Tensor], repeats: int) -> float:
    """Median wall seconds of one forward pass (after one warm-up pass)."""
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            started = time.perf_counter()
            model(**inputs)
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--docs", type=int, default=8, help="documents per batch (the local backend's batch)")
    parser.add_argument("--tokens", type=int, default=384, help="tokens per document (the demo's max_document_tokens)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    quiet_model_loading()
    converted = resolve_model(EMBEDDED_LLM).path
    gguf = smollm2_gguf()
    inputs = batch(args.path, args.docs, args.tokens, AutoTokenizer.from_pretrained(converted))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; dtype auto on this CPU: "
        f"{resolve_dtype('auto', 'cpu')}; batch {tuple(inputs['input_ids'].shape)} tokens"
    )
    variants = {
        "converted": lambda dtype: AutoModelForCausalLM.from_pretrained(converted, dtype=dtype),
        "GGUF as shipped": lambda dtype: AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=dtype
        ),
    }
    for name, load in variants.items():
        seconds = {}
        for dtype in (torch.float32, torch.bfloat16):
            model = load(dtype).eval()
            seconds[dtype] = median_seconds(model, inputs, args.repeats)
            del model
        fp32, bf16 = seconds[torch.float32], seconds[torch.bfloat16]
        print(
            f"{name:>16}: float32 {fp32 * 1000:8.1f} ms/batch | bfloat16 {bf16 * 1000:8.1f} ms/batch | "
            f"bfloat16 is {fp32 / bf16:.2f}x float32's speed"
        )


if __name__ == "__main__":
    main()
