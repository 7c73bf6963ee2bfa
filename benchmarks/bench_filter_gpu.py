"""Filter engine on a GPU: docs/s, tokens/s and the GPU's busy fraction, engine against the ``pipeline`` baseline.

One command, no download: a randomly initialised BERT-base (110M parameters) with one regression head, the
BERT uncased tokenizer that ships with the packaged all-MiniLM-L6-v2, FineWeb-Edu documents (``../shared/data``;
any JSONL with a ``text`` field) cycled to ``--docs``, 512 tokens, bfloat16.

- baseline: ``transformers.pipeline("text-classification", batch_size=32)``, the model cast to the same dtype;
- engine: :class:`mlfilter.filtering.engine.Scorer` through ``score_stream`` as the filter runs it (tokenizer
  process pool, length-sorted batches under a token budget, pinned buffers, side-stream copies).

Busy fraction: the time the GPU spends in the model's forward passes (CUDA events recorded around every call,
summed) over the wall time of the run; on a CPU (``--tiny`` runs there, in the tests) the same ratio from wall
clocks around the calls. Target on one H100/H200: >= 3,000 docs/s for the engine on FineWeb-Edu lengths.

    python benchmarks/bench_filter_gpu.py                        # on a GPU machine, under 8 minutes
    python benchmarks/bench_filter_gpu.py --tiny --device cpu    # seconds: a 2-layer model on a few documents
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
from mlfilter.filtering.engine import Scorer, load_model
from mlfilter.filtering.params import ScoringParams
from mlfilter.modeling import AnnotatorConfig, AnnotatorModel

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"
TINY_SOURCE = Path(__file__).resolve().parents[1] / "tests" / "training" / "data" / "fineweb_edu_sample.jsonl"


class BusyMeter:
    """Wraps a module method and adds up the device time of its calls (CUDA events, or wall clocks on a CPU)."""

    def __init__(self, owner: Any, name: str, device: torch.device) -> None:
        self.device = device
        self.pairs: list[tuple[Any, Any]] = []
        self.cpu_seconds = 0.0
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                result = original(*args, **kwargs)
                end.record()
                self.pairs.append((start, end))
                return result
            began = time.perf_counter()
            result = original(*args, **kwargs)
            self.cpu_seconds += time.perf_counter() - began
            return result

        setattr(owner, name, timed)

    def reset(self) -> None:
        self.pairs.clear()
        self.cpu_seconds = 0.0

    def seconds(self) -> float:
        """Device seconds spent in the wrapped calls since the last reset."""
        if self.device.type != "cuda":
            return self.cpu_seconds
        torch.cuda.synchronize(self.device)
        return sum(start.elapsed_time(end) for start, end in self.pairs) / 1000.0


def build_model(folder: Path, tiny: bool) -> None:
    """A random BERT-base (or a 2-layer BERT with ``tiny``) AnnotatorModel with the BERT uncased tokenizer."""
    from transformers import AutoTokenizer, BertConfig

    torch.manual_seed(0)
    encoder = (
        BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
        if tiny
        else BertConfig()
    )
    config = AnnotatorConfig(encoder=encoder.to_dict(), task_names=["educational"], num_targets_per_task=[6])
    AnnotatorModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model(EMBEDDED_ENCODER).path).save_pretrained(folder)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=Path, help="JSONL with a text field (default: FineWeb-Edu in ../shared)")
    parser.add_argument("--docs", type=int, help="documents to score (default 20000; 64 with --tiny)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    parser.add_argument("--max-length", type=int, help="tokens per document (default 512; 128 with --tiny)")
    parser.add_argument("--batch-size", type=int, default=32, help="the baseline's fixed batch size")
    parser.add_argument("--token-budget", type=int, default=0, help="the engine's padded tokens per batch (0: auto)")
    parser.add_argument("--window", type=int, default=4096, help="documents the engine sorts together")
    parser.add_argument("--workers", type=int, default=0, help="engine tokenizer processes (0: auto)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model and a few documents: a smoke run")
    args = parser.parse_args()
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(hf_logging.CRITICAL)
    hf_logging.disable_progress_bar()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or with --tiny --device cpu")
    documents = args.documents or (TINY_SOURCE if args.tiny else SOURCE)
    source = [json.loads(line)["text"] for line in documents.read_text(encoding="utf-8").splitlines() if line.strip()]
    count = args.docs or (64 if args.tiny else 20000)
    max_length = args.max_length or (128 if args.tiny else 512)
    texts = [source[i % len(source)] for i in range(count)]
    dtype = getattr(torch, args.dtype)

    with tempfile.TemporaryDirectory() as folder:
        build_model(Path(folder), args.tiny)
        options = ScoringParams(
            max_length=max_length,
            device=args.device,
            dtype=args.dtype,
            token_budget=args.token_budget,
            window=args.window,
            tokenize_workers=args.workers,
        )
        model, tokenizer = load_model(folder, args.device, args.dtype)
        baseline_model, _ = load_model(folder, args.device, args.dtype)
    baseline_model.to(dtype)
    engine_meter = BusyMeter(model, "embed", device)  # before the Scorer, which takes the model's embed when built
    scorer = Scorer(model, tokenizer, options)
    baseline_meter = BusyMeter(baseline_model, "forward", device)
    classify = pipeline(
        "text-classification",
        model=baseline_model,
        tokenizer=tokenizer,
        device=device,
        batch_size=args.batch_size,
        truncation=True,
        max_length=max_length,
        function_to_apply="none",
    )
    tokens = int(sum(min(n, max_length) for n in map(len, tokenizer(texts, truncation=False)["input_ids"])))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"{count} documents, {tokens} tokens at max_length {max_length}; random BERT ({parameters:.0f}M parameters) "
        f"in {args.dtype} on {name}; engine tokenizer processes: {scorer.tokenize_workers or 'in-process'}"
    )

    results: dict[str, tuple[float, float, np.ndarray]] = {}
    for label, meter, run in (
        ("baseline", baseline_meter, lambda: np.asarray([r["score"] for r in classify(texts)], np.float32)),
        (
            "engine",
            engine_meter,
            lambda: np.concatenate(
                [
                    s.scores[:, 0]
                    for _, s in scorer.score_stream(
                        [texts[i : i + args.window] for i in range(0, count, args.window)], lambda t: t
                    )
                ]
            ),
        ),
    ):
        if label == "baseline":
            classify(texts[: args.batch_size])
        else:
            list(scorer.score_stream([texts[:64]], lambda t: t))  # starts the tokenizer pool
        synchronize(device)
        meter.reset()
        start = time.perf_counter()
        scores = run()
        synchronize(device)
        seconds = time.perf_counter() - start
        results[label] = (seconds, meter.seconds() / seconds, scores)
    scorer.close()
    baseline_seconds = results["baseline"][0]
    for label, (seconds, busy, scores) in results.items():
        difference = float(np.abs(scores - results["baseline"][2]).max())
        print(
            f"{label:8s} {count / seconds:10.1f} docs/s {tokens / seconds:12.0f} tokens/s  busy {busy:6.1%}  "
            f"speed-up {baseline_seconds / seconds:5.2f}x  max |score - baseline| {difference:.1e}"
        )


if __name__ == "__main__":
    main()
