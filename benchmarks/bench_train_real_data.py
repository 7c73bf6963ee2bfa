"""Does the trained annotator model learn real LLM scores? Our model against TF-IDF + ridge, same split.

Data: FineWeb-Edu documents with Llama-3-70B educational scores (0–5). A seeded split stratified by
score: 70% train, 10% val (model selection for every contender: the best epoch for ours, the ridge
alpha for the baseline), 20% held out — the figures printed are on the held-out part, which nothing
was selected on. Contenders:

- TF-IDF (word 1–2-grams, sublinear tf) + ridge regression (scikit-learn);
- ours, frozen: all-MiniLM-L6-v2 frozen, mean pooling, heads trained on cached embeddings;
- ours, fine-tuned: the whole all-MiniLM-L6-v2 fine-tuned through the Trainer (``--fine-tune-epochs 0``
  skips it; it is the slow one on a CPU).

Metrics as the train stage computes them: Spearman of the scores, and F1 of "predicted label ≥ 3"
(rounded regression score) against "label ≥ 3".

    python benchmarks/bench_train_real_data.py [PATH] [--max-length 512] [--fine-tune-epochs 4]
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

import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

from mlfilter.modeling import AnnotatorModel
from mlfilter.params import TaskParams
from mlfilter.training.data import LabeledData
from mlfilter.training.frozen import Embedder
from mlfilter.training.metrics import all_metrics
from mlfilter.training.params import TrainingParams
from mlfilter.training.run import train_annotator

DEFAULT_DATA = (
    Path(__file__).parents[1] / ".." / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"
).resolve()
TASK = TaskParams(name="educational", prompt="", num_targets=6, threshold=3)
SHOWN = ("spearman", "binary_f1", "mae", "accuracy", "macro_f1")


def split(path: Path, seed: int) -> tuple[LabeledData, LabeledData, LabeledData]:
    """Train / val / held-out parts, stratified by score."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels = np.array([r["scores"]["score"] for r in rows], dtype=np.float32)
    index = np.arange(len(rows))
    rest, held_out = train_test_split(index, test_size=0.2, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=0.125, stratify=labels[rest], random_state=seed)

    def part(ids: np.ndarray) -> LabeledData:
        return LabeledData(
            texts=[rows[i]["text"] for i in ids],
            labels=labels[ids, None],
            ids=[rows[i]["id"] for i in ids],
            files=[str(path)],
        )

    return part(train), part(val), part(held_out)


def metrics(scores: np.ndarray, data: LabeledData) -> dict[str, float]:
    """Our metrics of one task's regression scores."""
    flat = all_metrics(scores[:, None], scores[:, None], data.labels.astype(np.float64), (TASK,), is_regression=True)
    return {name: flat[f"{name}_educational"] for name in SHOWN}


def tfidf_ridge(train: LabeledData, val: LabeledData, held_out: LabeledData) -> tuple[np.ndarray, str]:
    """The baseline's held-out scores, with the ridge alpha chosen on val by Spearman."""
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=200_000)
    x_train = vectorizer.fit_transform(train.texts)
    x_val, x_held = vectorizer.transform(val.texts), vectorizer.transform(held_out.texts)
    best = max(
        (metrics(Ridge(alpha=a).fit(x_train, train.labels[:, 0]).predict(x_val), val)["spearman"], a)
        for a in (0.3, 1.0, 3.0, 10.0)
    )
    model = Ridge(alpha=best[1]).fit(x_train, train.labels[:, 0])
    return model.predict(x_held), f"alpha={best[1]}"


def score_texts(model_dir: Path, texts: list[str], max_length: int, cache: Path) -> np.ndarray:
    """Scores of a saved model (pooled embeddings through the embedding cache, then the heads)."""
    model = AnnotatorModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    embedder = Embedder(model, tokenizer, cache_dir=cache, max_length=max_length, batch_size=32, precision="fp32")
    embeddings, _ = embedder.embed(texts)
    with torch.no_grad():
        return model.forward_embeddings(torch.from_numpy(embeddings)).scores[:, 0].numpy()


def ours(
    name: str, data: tuple[LabeledData, LabeledData, LabeledData], scratch: Path, seed: int, **overrides: object
) -> tuple[np.ndarray, dict]:
    """Train one of our recipes; its held-out scores and its training summary."""
    train, val, held_out = data
    values = {"embedding_cache_dir": str(scratch / "embeddings"), "checkpoint_dir": str(scratch / "checkpoints")}
    values.update(overrides)
    params = TrainingParams(**values)
    result = train_annotator(
        train,
        val,
        params=params,
        tasks=(TASK,),
        seed=seed,
        output_dir=scratch / name,
        live_dir=scratch / f"live-{name}",
    )
    scores = score_texts(scratch / name, held_out.texts, params.max_length, scratch / "embeddings")
    return scores, result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA, help="FineWeb-Edu annotations JSONL")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-length", type=int, default=512, help="tokens per document for the frozen model")
    parser.add_argument("--fine-tune-epochs", type=int, default=4, help="0 skips full fine-tuning")
    parser.add_argument("--fine-tune-max-length", type=int, default=256)
    parser.add_argument("--fine-tune-lr", type=float, default=1e-4)
    args = parser.parse_args()
    if not args.path.exists():
        raise SystemExit(f"data not found: {args.path} (pass the path of fineweb-edu-llama3-annotations-1000.jsonl)")
    hf_logging.set_verbosity_error()
    data = split(args.path, args.seed)
    train, val, held_out = data
    print(
        f"data: {args.path.name}; split seed {args.seed}, stratified by score: {len(train)} train, {len(val)} val "
        f"(selection), {len(held_out)} held out (reported); positives (score >= 3) held out: "
        f"{int((held_out.labels >= 3).sum())}"
    )
    rows: list[tuple[str, dict[str, float], str, float]] = []
    start = time.perf_counter()
    baseline, chosen = tfidf_ridge(train, val, held_out)
    rows.append(
        ("TF-IDF 1-2-grams + ridge (baseline)", metrics(baseline, held_out), chosen, time.perf_counter() - start)
    )
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        start = time.perf_counter()
        frozen, summary = ours(
            "frozen",
            data,
            scratch,
            args.seed,
            max_length=args.max_length,
            num_epochs=30,
            learning_rate=3e-3,
            early_stopping_patience=0,
        )
        label = f"ours: MiniLM frozen, mean pool, linear head, {args.max_length} tok"
        note = f"best at step {summary['best']['global_step']}"
        rows.append((label, metrics(frozen, held_out), note, time.perf_counter() - start))
        if args.fine_tune_epochs:
            start = time.perf_counter()
            tuned, summary = ours(
                "fine-tuned",
                data,
                scratch,
                args.seed,
                freeze_base_model_parameters=False,
                max_length=args.fine_tune_max_length,
                num_epochs=args.fine_tune_epochs,
                learning_rate=args.fine_tune_lr,
                batch_size=16,
                early_stopping_patience=0,
            )
            label = (
                f"ours: MiniLM fine-tuned, {args.fine_tune_epochs} ep, lr {args.fine_tune_lr:g}, "
                f"{args.fine_tune_max_length} tok"
            )
            note = f"best at step {summary['best']['global_step']}"
            rows.append((label, metrics(tuned, held_out), note, time.perf_counter() - start))
    print(f"{'model':62s} " + " ".join(f"{m:>9s}" for m in SHOWN) + "   seconds  selection")
    for name, values, note, seconds in rows:
        print(f"{name:62s} " + " ".join(f"{values[m]:9.4f}" for m in SHOWN) + f" {seconds:9.1f}  {note}")
    base = rows[0][1]
    for name, values, _, _ in rows[1:]:
        verdict = ", ".join(
            f"{m} {values[m] - base[m]:+.4f} ({'better' if values[m] > base[m] else 'not better'})"
            for m in ("spearman", "binary_f1")
        )
        print(f"{name} vs baseline: {verdict}")


if __name__ == "__main__":
    main()
