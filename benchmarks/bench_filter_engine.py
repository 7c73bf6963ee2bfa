"""Documents per second of the filter's scoring engine against a ``transformers`` pipeline baseline.

Same model, same documents, same process, same max length (512 by default):

- baseline: ``transformers.pipeline("text-classification", batch_size=32)`` — fixed batches in input
  order, each padded to its longest document, one tokenizer call per document;
- engine: :class:`mlfilter.filtering.engine.Scorer` — tokenization of the next window of documents in
  a background thread (the Rust tokenizer over all cores), batches of length-sorted documents under a
  token budget, ``torch.inference_mode``; on a GPU, bfloat16/float16 and SDPA attention.

Documents: real FineWeb-Edu texts of varied lengths (``../shared/data``, ODC-BY), cycled up to
``--docs``. Each engine runs ``--repeats`` times in turn and the fastest run counts, which damps the
noise of a shared machine. Printed: docs/s and tokens/s of both, their ratio, the padding fraction
of each batching, and the largest score difference between the two (the same model must agree).

    python benchmarks/bench_filter_engine.py                       # MiniLM (packaged), CPU
    python benchmarks/bench_filter_engine.py --device cuda --encoder-config bert-base --docs 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
from mlfilter.filtering.engine import Scorer, load_model, plan_batches
from mlfilter.filtering.params import ScoringParams
from mlfilter.modeling import AnnotatorConfig, AnnotatorModel

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"


def build_model(encoder_config: str, folder: Path) -> None:
    """Save a one-task regression AnnotatorModel (MiniLM weights, or a random BERT-base) with a tokenizer."""
    from transformers import AutoTokenizer, BertConfig

    minilm = resolve_model(EMBEDDED_ENCODER).path
    torch.manual_seed(0)
    if encoder_config == "minilm":
        model = AnnotatorModel.from_encoder(minilm, task_names=["educational"], num_targets_per_task=[6])
    else:
        config = AnnotatorConfig(encoder=BertConfig().to_dict(), task_names=["educational"], num_targets_per_task=[6])
        model = AnnotatorModel(config)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder)


def padding_fraction(lengths: np.ndarray, batches: list[np.ndarray], multiple: int = 1) -> float:
    """Share of the tokens run through the model that are padding."""
    padded = sum(-(-int(lengths[b].max()) // multiple) * multiple * len(b) for b in batches)
    return 1.0 - float(lengths.sum()) / padded


def run_baseline(model: Any, tokenizer: Any, texts: list[str], args: argparse.Namespace) -> tuple[float, np.ndarray]:
    from transformers import pipeline

    device = torch.device(args.device)
    classify = pipeline(
        "text-classification",
        model=model,
        tokenizer=tokenizer,
        device=device,
        batch_size=args.batch_size,
        truncation=True,
        max_length=args.max_length,
        function_to_apply="none",
    )
    classify(texts[: args.batch_size])
    synchronize(device)
    start = time.perf_counter()
    results = classify(texts)
    synchronize(device)
    return time.perf_counter() - start, np.asarray([r["score"] for r in results], dtype=np.float32)


def run_engine(scorer: Scorer, texts: list[str], window: int) -> tuple[float, np.ndarray]:
    device = scorer.runner.device
    scorer.score(texts[:32])
    synchronize(device)
    start = time.perf_counter()
    windows = [texts[i : i + window] for i in range(0, len(texts), window)]
    scores = np.concatenate([scored.scores[:, 0] for _, scored in scorer.score_stream(windows, lambda t: t)])
    synchronize(device)
    return time.perf_counter() - start, scores


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=Path, default=SOURCE, help="JSONL with a text field")
    parser.add_argument("--docs", type=int, help="documents to score (cycled; default 300 on CPU, 20000 on GPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoder-config", choices=["minilm", "bert-base"], default="minilm")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto")
    parser.add_argument("--baseline-dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32, help="the baseline's fixed batch size")
    parser.add_argument("--token-budget", type=int, default=0, help="the engine's padded tokens per batch (0: auto)")
    parser.add_argument("--window", type=int, default=1024, help="documents the engine sorts together")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(hf_logging.CRITICAL)
    hf_logging.disable_progress_bar()

    with open(args.documents, encoding="utf-8") as handle:
        source = [json.loads(line)["text"] for line in handle]
    count = args.docs or (20000 if args.device.startswith("cuda") else 300)
    texts = [source[i % len(source)] for i in range(count)]

    engines: dict[str, Scorer] = {}
    with tempfile.TemporaryDirectory() as folder:
        build_model(args.encoder_config, Path(folder))
        baseline_model, tokenizer = load_model(folder, args.device, args.baseline_dtype)
        baseline_model.to(getattr(torch, args.baseline_dtype))
        for dtype in dict.fromkeys(["float32", args.dtype]):
            options = ScoringParams(
                max_length=args.max_length, device=args.device, dtype=dtype, token_budget=args.token_budget
            )
            model, _ = load_model(folder, args.device, dtype)
            name = f"{dtype} → {next(model.encoder.parameters()).dtype}".replace("torch.", "")
            engines[name] = Scorer(model, tokenizer, options)
    scorer = next(iter(engines.values()))
    parameters = sum(p.numel() for p in baseline_model.parameters())
    lengths = np.asarray(
        [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
    )
    fixed = [np.arange(i, min(i + args.batch_size, count)) for i in range(0, count, args.batch_size)]
    multiple, budget = scorer.runner.multiple, scorer.runner.token_budget
    sorted_batches = [
        b + start
        for start in range(0, count, args.window)
        for b in plan_batches(lengths[start : start + args.window], budget, scorer.options.max_batch_size, multiple)
    ]
    tokens = int(lengths.sum())
    print(
        f"{count} documents ({len(set(texts))} distinct), {tokens} tokens at max_length {args.max_length}; "
        f"encoder {args.encoder_config} ({parameters / 1e6:.0f}M parameters) on {args.device}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    times: dict[str, list[float]] = {"baseline": [], **{name: [] for name in engines}}
    scores: dict[str, np.ndarray] = {}
    for repeat in range(args.repeats):
        seconds, scores["baseline"] = run_baseline(baseline_model, tokenizer, texts, args)
        times["baseline"].append(seconds)
        for name, engine in engines.items():
            seconds, scores[name] = run_engine(engine, texts, args.window)
            times[name].append(seconds)
        print(f"  run {repeat + 1}: " + ", ".join(f"{name} {t[-1]:.2f} s" for name, t in times.items()))
    baseline = min(times["baseline"])
    print(
        f"baseline  pipeline, batch {args.batch_size}, unsorted, {args.baseline_dtype}: {count / baseline:9.1f} docs/s "
        f"{tokens / baseline:10.0f} tokens/s  padding {padding_fraction(lengths, fixed):.1%}"
    )
    for name in engines:
        best = min(times[name])
        difference = np.abs(scores[name] - scores["baseline"]).max()
        print(
            f"engine    sorted, {budget}-token batches, {name}: {count / best:9.1f} docs/s {tokens / best:10.0f} "
            f"tokens/s  padding {padding_fraction(lengths, sorted_batches, multiple):.1%}  "
            f"speed-up {baseline / best:.2f}x  max |score - baseline| {difference:.1e}"
        )


if __name__ == "__main__":
    main()
