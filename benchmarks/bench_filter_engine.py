"""Documents per second of the filter's scoring engine: the host feed alone, the full CPU scoring rate, and
the CPU-class classifiers next to the encoder.

Three parts, all in one process, each against its baseline side by side (``--parts`` picks them):

- ``host``: the host side alone. The model is replaced by a no-op of the same interface (``embed`` and
  ``forward_embeddings``), so only reading, tokenizing, windowing, batching and collating are timed. The
  current engine runs against the engine as it was before issue 15 (``--old-rev``, loaded from git), each with
  one Rust tokenizer thread and one torch thread, rates per CPU-second of the process (a core's worth of work,
  which holds on a shared machine), on real FineWeb-Edu documents (the second half of the file, each document
  once) and on a long-tail set where every tenth document is a 100k-character one. The new engine runs with an
  empty word cache and with one warmed on the file's first half (other documents, so the figure is what a long
  run over unseen documents sees); next to them, the Rust tokenizer alone on the same heads: the most any engine
  that runs it on every head can reach. Then the current engine with a tokenizer pool of ``--workers``
  processes (wall-clock docs/s; on a shared machine this is bounded by the free cores).
- ``cpu``: the whole engine against ``transformers.pipeline("text-classification", batch_size=32)`` — fixed
  batches in input order, each padded to its longest document — same model, documents and max length (512),
  float32, with the padding fraction of each batching and the largest score difference (they must agree). On a
  CPU both run on one torch thread (``--threads``) and the speed-up is per CPU-second, wall time beside it. The
  engine runs eager in float32, compiled by TorchInductor in float32 (``filter.scoring.compile: true``; its
  one-off compile is printed apart, ``--no-compiled`` leaves it out) and in ``--dtype``. Then the ``kernels``
  line: the float32 engine's matrix products and attention calls, recorded in one run and replayed alone —
  the cost of any runtime that keeps those kernels (MKL's products, PyTorch's fused attention) and removes all
  the rest, so the most it can gain over the baseline, with MKL's rate on a large square product beside it.
- ``classifiers``: fastText (``training.classifier: fasttext``, ordered bins and classification), model2vec
  (``training.classifier: model2vec``: static embeddings distilled from the packaged MiniLM with the default
  ``training.model2vec`` settings, ridge heads) and the encoder (all-MiniLM-L6-v2 frozen, mean pooling, linear
  head, the train stage's fast path), each trained by the train stage's own code on the same 70% of the
  FineWeb-Edu documents (10% val), saved, loaded and measured on the held-out 20%: Spearman, binary F1
  (label >= 3), and docs/s per core (one thread) through the filter's scorers.

Documents: real FineWeb-Edu texts (``../shared/data``, ODC-BY), cycled up to the document counts asked for.
Each timed run repeats ``--repeats`` times (the cpu part: ``--cpu-repeats``, default 1, so it ends in minutes on a
shared 2-core machine) and the fastest counts, which damps the noise of a shared machine.

    python benchmarks/bench_filter_engine.py                       # MiniLM (packaged), CPU, every part
    python benchmarks/bench_filter_engine.py --parts host --workers 16
    python benchmarks/bench_filter_engine.py --parts cpu --device cuda --encoder-config bert-base --docs 20000
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")  # one Rust tokenizer thread: rates below are per core
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFILTER_PROGRESS", "0")
os.environ.setdefault("TQDM_DISABLE", "1")  # model2vec distillation draws a progress bar

import numpy as np
import torch

from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
from mlfilter.filtering.engine import Scorer, load_model, plan_batches
from mlfilter.filtering.params import ScoringParams
from mlfilter.filtering.tokenize import cut_at_word
from mlfilter.modeling import AnnotatorConfig, AnnotatorModel

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"
#: The engine before issue 15 (thread-pool tokenization of whole documents, per-row collate).
OLD_REVISION = "9f0983b"
LONG_DOCUMENT_CHARS = 100_000
DEFAULT_THREADS = torch.get_num_threads()


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(repeats: int, run: Callable[[], Any]) -> tuple[float, float, Any]:
    """Fastest wall time and fewest CPU seconds of this process (all its threads) over ``repeats`` runs, and
    the last run's result. CPU seconds are what a run costs on a shared, oversubscribed machine."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def stream_scores(scorer: Any, texts: list[str], window: int) -> np.ndarray:
    """Scores of ``texts`` through ``score_stream`` in windows of ``window`` documents, as the filter runs."""
    windows = [texts[i : i + window] for i in range(0, len(texts), window)]
    return np.concatenate([scored.scores[:, 0] for _, scored in scorer.score_stream(windows, lambda t: t)])


# ---------------------------------------------------------------------------------------------- host feed


class NoOpModel(torch.nn.Module):
    """The model interface the engine calls (``embed``, ``forward_embeddings``, ``config.task_names``), doing
    nothing but reading the first column of the batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(task_names=["educational"], is_regression=True, num_targets_per_task=[6])

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return (input_ids[:, :1] + attention_mask[:, :1]).float()

    def forward_embeddings(self, embeddings: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(scores=embeddings)


def old_engine(revision: str) -> ModuleType:
    """``mlfilter/filtering/engine.py`` as it was at ``revision``, imported from git."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:src/mlfilter/filtering/engine.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader(f"engine_at_{revision}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"engine.py@{revision}", "exec"), module.__dict__)
    return module


def long_tail(texts: list[str], count: int) -> list[str]:
    """``count`` documents: FineWeb-Edu texts, every tenth replaced by a 100k-character document made of
    consecutive FineWeb-Edu texts."""
    out = []
    for i in range(count):
        if i % 10 == 9:
            parts, j = [], i
            while sum(map(len, parts)) < LONG_DOCUMENT_CHARS:
                parts.append(texts[j % len(texts)])
                j += 1
            out.append("\n".join(parts)[:LONG_DOCUMENT_CHARS])
        else:
            out.append(texts[i % len(texts)])
    return out


def rate_line(label: str, cpu: float, wall: float | None = None, *, n: int, tokens: int) -> str:
    """``label: docs/s and tokens/s per core`` for ``n`` documents of ``tokens`` tokens in ``cpu`` CPU-seconds."""
    rate = f"{label:34s}: {n / cpu:8.1f} docs/s per core {tokens / cpu:9.0f} tokens/s per core"
    return rate + (f"  ({n / wall:.1f} docs/s wall)" if wall else "")


def host_part(source: list[str], tokenizer: Any, args: argparse.Namespace) -> None:
    """Host feed rate, new against old, per core; the Rust tokenizer alone on the same heads (what the engine
    would cost without its word cache); then the new engine with a tokenizer pool."""
    torch.set_num_threads(1)
    before = old_engine(args.old_rev)
    options = ScoringParams(max_length=args.max_length, device="cpu", dtype="float32")
    old = before.Scorer(NoOpModel(), tokenizer, options)
    half = len(source) // 2
    warm, fresh = source[:half], source[half:][: args.host_docs or None]
    sets = {"FineWeb-Edu": fresh, "long tail (1 in 10 of 100k chars)": long_tail(fresh, len(fresh))}

    def new_engine(texts: list[str], warm_up: list[str], workers: int = 0) -> tuple[float, float, np.ndarray, str]:
        """Fastest of ``repeats`` runs, each by a new scorer (an empty word cache) first fed ``warm_up``; with the
        timed run's words per document and the share the Rust tokenizer had to tokenize (in-process runs)."""
        runs = []
        for _ in range(args.repeats):
            scorer = Scorer(NoOpModel(), tokenizer, dataclasses.replace(options, tokenize_workers=workers))
            if warm_up:
                stream_scores(scorer, warm_up, args.window)
            cache = scorer.tokenizer.word_cache
            before = (cache.looked_up, cache.tokenized) if cache else (0, 0)
            runs.append(best_of(1, lambda s=scorer: stream_scores(s, texts, args.window)))
            scorer.close()
        looked_up, tokenized = (cache.looked_up - before[0], cache.tokenized - before[1]) if cache else (0, 0)
        share = f"; {looked_up / len(texts):.0f} words per document, {tokenized / max(looked_up, 1):.1%} tokenized"
        return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2], share if looked_up else ""

    print(
        f"host feed, no-op model, max_length {args.max_length}, windows of {args.window} documents; per core = "
        "documents per CPU-second of the process (one tokenizer thread, one torch thread); every document distinct "
        f"and unseen by the word cache, which is warmed (where said) on {len(warm)} other FineWeb-Edu documents:"
    )
    for name, texts in sets.items():
        document_tokenizer = Scorer(NoOpModel(), tokenizer, options).tokenizer
        window_tokens = document_tokenizer(texts).lengths.sum()
        heads = [cut_at_word(text, document_tokenizer.char_limit) for text in texts]
        rust = document_tokenizer.backend
        old_wall, old_cpu, old_scores = best_of(args.repeats, lambda t=texts: stream_scores(old, t, args.window))
        _, rust_cpu, _ = best_of(args.repeats, lambda h=heads, r=rust: r.encode_batch_fast(h, add_special_tokens=False))
        cold_wall, cold_cpu, cold_scores, cold_missed = new_engine(texts, [])
        new_wall, new_cpu, new_scores, new_missed = new_engine(texts, warm)
        pool_wall, _, pool_scores, _ = new_engine(texts, warm, args.workers)
        same = np.array_equal(old_scores, cold_scores) and np.array_equal(cold_scores, new_scores)
        assert same and np.array_equal(new_scores, pool_scores), "windows differ"
        n = len(texts)
        line = functools.partial(rate_line, n=n, tokens=int(window_tokens))
        print(
            f"  {name}: {n} documents, {sum(map(len, texts)) / n:,.0f} characters and {window_tokens / n:.0f} "
            "model tokens each"
        )
        print("    " + line(f"old engine ({args.old_rev})", old_cpu, old_wall))
        print(
            "    " + line("Rust tokenizer alone, heads only", rust_cpu) + f"  {old_cpu / rust_cpu:.2f}x old: the "
            "most an engine that runs it on every head can reach"
        )
        print(
            "    "
            + line("new engine, empty word cache", cold_cpu, cold_wall)
            + f"  {old_cpu / cold_cpu:.2f}x old"
            + cold_missed
        )
        print(
            "    " + line("new engine, warmed word cache", new_cpu, new_wall) + f"  {old_cpu / new_cpu:.2f}x old; "
            f"16 cores at this rate: {16 * n / new_cpu:,.0f} docs/s" + new_missed
        )
        print(
            f"    new engine, pool of {args.workers} tokenizer processes, warmed: {n / pool_wall:.1f} docs/s wall "
            f"({os.cpu_count()} cores on this machine, load average {os.getloadavg()[0]:.1f})"
        )


# ---------------------------------------------------------------------------------------------- CPU scoring


def run_baseline(model: Any, tokenizer: Any, texts: list[str], args: argparse.Namespace) -> tuple[float, float, Any]:
    """Wall seconds, CPU-seconds and scores of ``transformers.pipeline`` over ``texts`` (after a warm-up batch)."""
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
    wall, cpu, results = best_of(1, lambda: (classify(texts), synchronize(device))[0])
    return wall, cpu, np.asarray([r["score"] for r in results], dtype=np.float32)


def warm_up_engine(scorer: Scorer, texts: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU-seconds of the engine's first batches (a compiled engine compiles here): 32 documents,
    then a single one (a batch of one row is a shape of its own)."""
    device = scorer.runner.device
    wall, cpu, _ = best_of(1, lambda: (scorer.score(texts[:32]), scorer.score(texts[:1]), synchronize(device)))
    return wall, cpu


def run_engine(scorer: Scorer, texts: list[str], window: int) -> tuple[float, float, Any]:
    """Wall seconds, CPU-seconds and scores of the engine over ``texts`` (after :func:`warm_up_engine`)."""
    device = scorer.runner.device
    synchronize(device)
    return best_of(1, lambda: (stream_scores(scorer, texts, window), synchronize(device))[0])


def cpu_part(source: list[str], args: argparse.Namespace) -> None:
    """The whole engine against the transformers pipeline, same model and documents."""
    torch.set_num_threads(args.threads or (1 if args.device == "cpu" else DEFAULT_THREADS))
    count = args.docs or (20000 if args.device.startswith("cuda") else 128)
    texts = [source[i % len(source)] for i in range(count)]
    engines: dict[str, Scorer] = {}
    with tempfile.TemporaryDirectory() as folder:
        build_model(args.encoder_config, Path(folder))
        baseline_model, tokenizer = load_model(folder, args.device, args.baseline_dtype)
        baseline_model.to(getattr(torch, args.baseline_dtype))
        variants = [("float32", False), ("float32", True), (args.dtype, False)] if args.compiled else []
        for dtype, compiled in dict.fromkeys(variants or [("float32", False), (args.dtype, False)]):
            options = ScoringParams(
                max_length=args.max_length,
                device=args.device,
                dtype=dtype,
                token_budget=args.token_budget,
                compile=compiled,
            )
            model, _ = load_model(folder, args.device, dtype)
            name = f"{dtype} → {next(model.encoder.parameters()).dtype}".replace("torch.", "")
            engines[name + (", compiled" if compiled else ", eager")] = Scorer(model, tokenizer, options)
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
        f"full scoring: {count} documents ({len(set(texts))} distinct), {tokens} tokens at max_length "
        f"{args.max_length}; encoder {args.encoder_config} ({parameters / 1e6:.0f}M parameters) on {args.device}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    times: dict[str, list[tuple[float, float]]] = {"baseline": [], **{name: [] for name in engines}}
    scores: dict[str, np.ndarray] = {}
    graphs = torch._dynamo.utils.counters["stats"]
    warm_up = {name: warm_up_engine(engine, texts) for name, engine in engines.items()}
    compiled_in_warm_up = graphs["unique_graphs"]
    for repeat in range(args.cpu_repeats):
        wall, cpu, scores["baseline"] = run_baseline(baseline_model, tokenizer, texts, args)
        times["baseline"].append((wall, cpu))
        for name, engine in engines.items():
            wall, cpu, scores[name] = run_engine(engine, texts, args.window)
            times[name].append((wall, cpu))
        print(
            f"  run {repeat + 1}: "
            + ", ".join(f"{name} {t[-1][0]:.2f} s wall / {t[-1][1]:.2f} CPU-s" for name, t in times.items())
        )
    base_wall, base_cpu = (min(t[k] for t in times["baseline"]) for k in (0, 1))
    print(
        f"  baseline  pipeline, batch {args.batch_size}, unsorted, {args.baseline_dtype}: {count / base_cpu:7.1f} "
        f"docs/s per CPU-second {tokens / base_cpu:8.0f} tokens/s per CPU-second ({count / base_wall:.1f} docs/s "
        f"wall)  padding {padding_fraction(lengths, fixed):.1%}"
    )
    for name in engines:
        wall, cpu = (min(t[k] for t in times[name]) for k in (0, 1))
        difference = np.abs(scores[name] - scores["baseline"]).max()
        print(
            f"  engine    sorted, {budget}-token batches, {name}: {count / cpu:7.1f} docs/s per CPU-second "
            f"{tokens / cpu:8.0f} tokens/s per CPU-second ({count / wall:.1f} docs/s wall)  padding "
            f"{padding_fraction(lengths, sorted_batches, multiple):.1%}  speed-up {base_cpu / cpu:.2f}x per "
            f"CPU-second, {base_wall / wall:.2f}x wall  max |score - baseline| {difference:.1e}"
        )
    for name, (wall, cpu) in warm_up.items():
        if name.endswith("compiled"):
            print(
                f"  one-off   {name}: the warm-up batches (32 documents, then 1) with compilation {wall:.1f} s wall / "
                f"{cpu:.1f} CPU-s; graphs compiled: {compiled_in_warm_up} in the warm-up, "
                f"{graphs['unique_graphs'] - compiled_in_warm_up} in the timed runs"
            )
    eager = next((name for name in engines if name.startswith("float32") and name.endswith("eager")), None)
    if eager is not None and args.device == "cpu":
        eager_cpu = min(t[1] for t in times[eager])
        padding = padding_fraction(lengths, sorted_batches, multiple)
        kernels_part(engines[eager], texts, args.window, base_cpu, eager_cpu, padding)


#: The matrix products of an encoder's forward pass as a dispatch mode sees them (in inference mode, before
#: decomposition), each with the position of its first factor.
MATRIX_PRODUCTS = {"aten::linear": 0, "aten::matmul": 0, "aten::mm": 0, "aten::bmm": 0, "aten::addmm": 1}


def kernel_calls(scorer: Scorer, texts: list[str], window: int) -> list[tuple[Any, list[Any], dict[str, Any]]]:
    """The matrix products and attention kernels one eager run of the engine calls, in order: each op with its
    tensor arguments as ``(shape, stride, dtype)`` (attention masks kept as they were: they steer the kernel)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    calls = []

    def spec(value: Any, keep: bool) -> Any:
        if isinstance(value, torch.Tensor) and not keep:
            return ("tensor", tuple(value.shape), tuple(value.stride()), value.dtype)
        return value

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            name = func.name().split(".")[0]
            if name in MATRIX_PRODUCTS:  # a linear's product alone: its bias is work a fused kernel may hide
                calls.append(
                    (func, [spec(arg, keep=False) for arg in args[: 2 if name == "aten::linear" else None]], {})
                )
            elif name == "aten::scaled_dot_product_attention":  # the mask (4th) steers the kernel: kept as it was
                calls.append(
                    (
                        func,
                        [spec(arg, keep=i == 3) for i, arg in enumerate(args)],
                        {key: spec(value, keep=key == "attn_mask") for key, value in kwargs.items()},
                    )
                )
            return func(*args, **kwargs)

    with torch.inference_mode(), Recorder():
        stream_scores(scorer, texts, window)
    return calls


def replay(calls: list[tuple[Any, list[Any], dict[str, Any]]]) -> tuple[float, float, float]:
    """CPU-seconds of the matrix products and of the attention kernels of ``calls`` replayed alone (on random
    inputs of the recorded shapes and strides, one input per shape reused: a bound from below), and the
    products' floating-point operations."""
    inputs: dict[Any, torch.Tensor] = {}

    def tensor(value: Any) -> Any:
        if not (isinstance(value, tuple) and value and value[0] == "tensor"):
            return value
        if value not in inputs:
            _, shape, stride, dtype = value
            storage = 1 + sum((size - 1) * step for size, step in zip(shape, stride, strict=True))
            inputs[value] = torch.randn(storage, dtype=dtype).as_strided(shape, stride)
        return inputs[value]

    ready = [
        (func, [tensor(a) for a in args], {k: tensor(v) for k, v in kwargs.items()}) for func, args, kwargs in calls
    ]
    products = attention = flops = 0.0
    with torch.inference_mode():
        for func, args, kwargs in ready:
            start = time.process_time()
            output = func(*args, **kwargs)
            seconds = time.process_time() - start
            first = MATRIX_PRODUCTS.get(func.name().split(".")[0])
            if first is not None:
                products += seconds
                flops += 2 * output.numel() * args[first].shape[-1]
            else:
                attention += seconds
    return products, attention, flops


def kernels_part(
    scorer: Scorer, texts: list[str], window: int, base_cpu: float, eager_cpu: float, padding: float
) -> None:
    """The float32 engine's matrix products and attention kernels replayed alone: what any runtime that keeps
    these kernels (MKL's products, PyTorch's fused attention) and removes everything else around them costs, so
    the most it can gain over the baseline, also were it to skip the ``padding`` share of the kernels' work too;
    and the products' rate next to MKL's on a large square product."""
    calls = kernel_calls(scorer, texts, window)
    products, attention, flops = min((replay(calls) for _ in range(2)), key=lambda r: r[0] + r[1])
    square = torch.randn(2048, 2048)
    _, square_cpu, _ = best_of(3, lambda: square @ square)
    print(
        f"  kernels   float32, the engine's {len(calls)} matrix-product and attention calls replayed alone: "
        f"{products + attention:.1f} CPU-s (products {products:.1f} CPU-s, {flops / 1e9:.0f} GFLOP at "
        f"{flops / products / 1e9:.0f} GFLOP/s, MKL on a 2048x2048 product here {2 * 2048**3 / square_cpu / 1e9:.0f}"
        f" GFLOP/s; attention {attention:.1f} CPU-s) of the eager engine's {eager_cpu:.1f}: any runtime keeping "
        f"these kernels reaches at most {base_cpu / (products + attention):.2f}x the baseline per CPU-second, "
        f"{base_cpu / (products + attention) / (1 - padding):.2f}x were it to skip the padding ({padding:.1%}) too"
    )


# ---------------------------------------------------------------------------------------------- classifiers


def classifiers_part(args: argparse.Namespace) -> None:
    """fastText, model2vec static embeddings and the frozen encoder on the same split, each trained → saved → loaded
    → scored through the pipeline's code: held-out Spearman / F1 and docs/s on one core."""
    from mlfilter.classifiers.base import load_classifier
    from mlfilter.classifiers.model2vec_model import Model2VecConfig
    from mlfilter.filtering.text_scorer import TextClassifierScorer
    from mlfilter.params import TaskParams
    from mlfilter.training.data import LabeledData
    from mlfilter.training.metrics import all_metrics
    from mlfilter.training.params import TrainingParams
    from mlfilter.training.run import train_from_files

    torch.set_num_threads(1)
    task = TaskParams(name="educational", prompt="", num_targets=6, threshold=3)
    static = Model2VecConfig()
    rows = [json.loads(line) for line in args.documents.read_text(encoding="utf-8").splitlines() if line.strip()]
    order = np.random.default_rng(args.seed).permutation(len(rows))
    cut = int(0.8 * len(rows))
    parts = {"train": order[: int(0.7 * len(rows))], "val": order[int(0.7 * len(rows)) : cut], "test": order[cut:]}
    held_out = LabeledData(
        texts=[rows[i]["text"] for i in parts["test"]],
        labels=np.asarray([[rows[i]["scores"]["score"]] for i in parts["test"]], dtype=np.float64),
        ids=[rows[i]["id"] for i in parts["test"]],
        files=[],
    )
    print(
        f"classifiers: FineWeb-Edu, seeded split {len(parts['train'])} train / {len(parts['val'])} val / "
        f"{len(parts['test'])} held out; Spearman and binary F1 (label >= 3) on the held-out part; 1 thread"
    )
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for name, ids in parts.items():
            with open(scratch / f"{name}.jsonl", "w", encoding="utf-8") as handle:
                for i in ids:
                    handle.write(json.dumps({"text": rows[i]["text"], "scores": [rows[i]["scores"]["score"]]}) + "\n")
        contenders = {
            "fastText, ordered bins, word 2-grams": {"classifier": "fasttext", "is_regression": True},
            "fastText, classification, word 2-grams": {"classifier": "fasttext", "is_regression": False},
            f"model2vec static MiniLM (PCA {static.pca_dims}), ridge head, {static.max_length} tok": {
                "classifier": "model2vec"
            },
            f"encoder MiniLM frozen, mean pool, linear head, {args.classifier_max_length} tok": {
                "mode": "frozen",
                "max_length": args.classifier_max_length,
                "num_epochs": 20,
                "early_stopping_patience": 0,
            },
        }
        for name, overrides in contenders.items():
            params = TrainingParams(
                embedding_cache_dir=str(scratch / "embeddings"), checkpoint_dir=str(scratch / "ckpt"), **overrides
            )
            folder = scratch / name.split(",")[0].replace(" ", "-")
            start = time.perf_counter()
            result = train_from_files(
                str(scratch / "train.jsonl"),
                str(scratch / "val.jsonl"),
                params=params,
                tasks=[task],
                seed=args.seed,
                output_dir=folder,
                live_dir=scratch / "live",
            )
            train_seconds = time.perf_counter() - start
            alpha = result.summary.get("best", {}).get("ridge_alpha")
            chosen = "" if alpha is None else f"; ridge alpha {alpha:g} chosen on val"
            if params.classifier == "encoder":
                options = ScoringParams(max_length=params.max_length, device="cpu", dtype="float32")
                scorer: Any = Scorer.load(str(folder), options)
            else:
                scorer = TextClassifierScorer(load_classifier(folder))
            scorer.score(held_out.texts[:8])
            _, seconds, scores = best_of(1, lambda s=scorer: s.score(held_out.texts).scores.astype(np.float64))
            flat = all_metrics(scores, scores, held_out.labels, (task,), is_regression=True)
            print(
                f"  {name:58s} Spearman {flat['spearman_educational']:.4f}  binary F1 "
                f"{flat['binary_f1_educational']:.4f}  MAE {flat['mae_educational']:.3f}  "
                f"{len(held_out) / seconds:9.1f} docs/s per core  (trained in {train_seconds:.0f} s{chosen})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="host,cpu,classifiers", help="comma-separated: host, cpu, classifiers")
    parser.add_argument("--documents", type=Path, default=SOURCE, help="FineWeb-Edu JSONL with text and scores")
    parser.add_argument("--docs", type=int, help="documents to score in the cpu part (default 128 CPU, 20000 GPU)")
    parser.add_argument("--host-docs", type=int, default=0, help="cap on the host part's documents (0: half the file)")
    parser.add_argument("--old-rev", default=OLD_REVISION, help="git revision of the engine to compare against")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="tokenizer processes (host part)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads, cpu part (0: 1 on a CPU, else default)")
    parser.add_argument("--encoder-config", choices=["minilm", "bert-base"], default="minilm")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto")
    parser.add_argument("--baseline-dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--classifier-max-length", type=int, default=256, help="the encoder's tokens (classifiers)")
    parser.add_argument("--batch-size", type=int, default=32, help="the baseline's fixed batch size")
    parser.add_argument("--token-budget", type=int, default=0, help="the engine's padded tokens per batch (0: auto)")
    parser.add_argument("--window", type=int, default=1024, help="documents the engine sorts together")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each host and classifiers measurement")
    parser.add_argument(
        "--compiled",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cpu part: also the float32 engine compiled by TorchInductor (filter.scoring.compile: true)",
    )
    parser.add_argument("--cpu-repeats", type=int, default=1, help="runs of each engine in the cpu part")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(hf_logging.CRITICAL)
    hf_logging.disable_progress_bar()
    if not args.documents.exists():
        raise SystemExit(f"{args.documents}: not found (pass --documents with FineWeb-Edu JSONL)")
    with open(args.documents, encoding="utf-8") as handle:
        source = [json.loads(line)["text"] for line in handle]
    parts = set(args.parts.split(","))
    if "host" in parts:
        host_part(source, AutoTokenizer.from_pretrained(resolve_model(EMBEDDED_ENCODER).path), args)
    if "cpu" in parts:
        cpu_part(source, args)
    if "classifiers" in parts:
        classifiers_part(args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
