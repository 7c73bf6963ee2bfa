"""Does the trained annotator model learn real LLM scores? Every training mode against TF-IDF + ridge, same split.

Data: FineWeb-Edu documents with Llama-3-70B educational scores (0–5). A seeded split stratified by
score: 70% train, 10% val (model selection for every contender: the best epoch, the auto mode's choice
and the calibrated cut for ours, the ridge alpha and cut for the baselines), 20% held out — the figures
printed are on the held-out part, which no training or selection reads. Contenders, side by side:

- TF-IDF (word 1–2-grams, sublinear tf) + ridge regression (scikit-learn) selected the way the train stage's
  ridge heads are (:mod:`mlfilter.training.ridge_head`): alpha by leave-one-out over train and val, refit on
  both, the cut calibrated on the leave-one-out predictions — the baseline the margins are taken against; and
  the evaluate stage's own baseline, :class:`mlfilter.classifiers.tfidf.TfidfClassifier` (character n-grams +
  ridge, default settings, cut calibrated on val);
- ours, through the train stage's own code (:func:`mlfilter.training.run.train_annotator`) with the
  ``training`` section of params.yaml, once per mode: ``frozen`` (heads on cached embeddings of the
  frozen encoder), ``finetune`` (the whole encoder), ``auto`` (both; keeps the better on val — it reuses
  the two runs' checkpoints, so it costs no extra training). The row marked "(default)" is the mode of
  params.yaml.

Metrics: Spearman and MAE of the raw scores; F1 of "score ≥ 3" both with the rounded rule
(FineWeb-Edu's ``int_score >= 3``, :func:`mlfilter.scores.at_or_above`) and with the cut calibrated on
val (max smoothed F1, stored in the model config); the spread ratio std(scores) / std(labels) (a head compressed
toward the mean is well below 1).

One split with 16 held-out positives is noisy (a Spearman standard error of about 0.04; one positive moves F1
by about 0.03). ``--seeds`` repeats the whole protocol over several seeded splits (each split's held-out part is
read by nothing of that split's training or selection; embeddings come from the cache, so frozen runs are
cheap) and ends with every contender's mean ± sd over seeds and the paired margin over the baseline per seed.

    python benchmarks/bench_train_real_data.py [PATH] [--seeds 42 43 44 45 46] [--modes frozen finetune auto]
        [--finetune-epochs N] [--finetune-max-length N] [--cache-dir .mlfilter/embeddings]

Fine-tuning the default encoder (SmolLM2-135M, 21 layers kept) on a CPU is slow: 2 epochs at 128 tokens took 800 s
on two shared cores, the params' 4 epochs at 256 tokens would take about 8 times as long; ``--modes frozen`` skips
it, and ``--finetune-epochs`` / ``--finetune-max-length`` shrink it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFILTER_PROGRESS", "0")

import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import RidgeCV
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import train_test_split
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

from mlfilter.classifiers.tfidf import TfidfClassifier
from mlfilter.modeling import AnnotatorModel
from mlfilter.params import TaskParams, load_section
from mlfilter.scores import at_or_above
from mlfilter.training.calibration import calibrate_cut
from mlfilter.training.data import LabeledData
from mlfilter.training.frozen import Embedder
from mlfilter.training.metrics import all_metrics
from mlfilter.training.params import TrainingParams
from mlfilter.training.run import train_annotator

ROOT = Path(__file__).resolve().parents[1]
DATA_NAME = "fineweb-edu-llama3-annotations-1000.jsonl"
#: The shared data folder beside the main checkout (/work/shared/data), also from a worktree one level deeper.
DATA_CANDIDATES = (ROOT.parent / "shared" / "data" / DATA_NAME, ROOT.parents[1] / "shared" / "data" / DATA_NAME)
TASK = TaskParams(name="educational", prompt="", num_targets=6, threshold=3)
SHOWN = ("spearman", "mae", "f1_rounded", "f1_calibrated", "spread")
MARGINS = ("spearman", "f1_calibrated")
MODES = ("frozen", "finetune", "auto")
TFIDF_ALPHAS = [0.3, 1.0, 3.0, 10.0]
#: RidgeCV's leave-one-out scorer: Spearman's ρ over all documents' leave-one-out predictions at once.
SPEARMAN = make_scorer(lambda truth, predicted, **_: spearmanr(truth, predicted).statistic)


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


def metrics(scores: np.ndarray, data: LabeledData, cut: float | None) -> dict[str, float]:
    """Our metrics of one task's raw scores; F1 at the calibrated ``cut`` (raw score >= cut) beside the rounded one."""
    flat = all_metrics(scores[:, None], scores[:, None], data.labels.astype(np.float64), (TASK,), is_regression=True)
    labels = data.labels[:, 0].astype(np.float64)
    kept = scores >= cut if cut is not None else np.zeros(len(scores), dtype=bool)
    return {
        "spearman": flat["spearman_educational"],
        "mae": flat["mae_educational"],
        "f1_rounded": flat["binary_f1_educational"],
        "f1_calibrated": float(f1_score(at_or_above(labels, TASK.threshold), kept, zero_division=0)),
        "spread": float(np.std(scores) / np.std(labels)),
    }


def tfidf_ridge(train: LabeledData, val: LabeledData, held_out: LabeledData) -> tuple[np.ndarray, float | None, str]:
    """The baseline's held-out scores and cut, selected like the train stage's ridge heads.

    The vectorizer and ridge are fitted on train and val together; alpha maximises the Spearman ρ of the
    leave-one-out predictions over both (:class:`~sklearn.linear_model.RidgeCV`), which also calibrate the cut.
    """
    texts = train.texts + val.texts
    labels = np.r_[train.labels[:, 0], val.labels[:, 0]].astype(np.float64)
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=200_000)
    x = vectorizer.fit_transform(texts)
    ridge = RidgeCV(alphas=TFIDF_ALPHAS, scoring=SPEARMAN, store_cv_results=True).fit(x, labels)
    column = TFIDF_ALPHAS.index(ridge.alpha_)
    cut = calibrate_cut(ridge.cv_results_.reshape(len(labels), -1)[:, column], labels, TASK.threshold).cut
    return ridge.predict(vectorizer.transform(held_out.texts)), cut, f"alpha={ridge.alpha_:g}"


def char_tfidf(train: LabeledData, val: LabeledData, held_out: LabeledData) -> tuple[np.ndarray, float | None]:
    """The evaluate stage's baseline (default settings): held-out scores and the cut calibrated on val."""
    model = TfidfClassifier.fit(train.texts, train.labels, task_names=[TASK.name], num_targets=[TASK.num_targets])
    cut = calibrate_cut(model.predict(val.texts)[:, 0], val.labels[:, 0].astype(np.float64), TASK.threshold).cut
    return model.predict(held_out.texts)[:, 0], cut


def score_texts(model_dir: Path, texts: list[str], max_length: int, cache: Path) -> np.ndarray:
    """Raw scores of a saved model (pooled embeddings through the embedding cache, then the heads)."""
    model = AnnotatorModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    embedder = Embedder(model, tokenizer, cache_dir=cache, max_length=max_length, batch_size=32, precision="fp32")
    embeddings, _ = embedder.embed(texts)
    with torch.no_grad():
        return model.forward_embeddings(torch.from_numpy(embeddings)).scores[:, 0].double().numpy()


def ours(
    params: TrainingParams, data: tuple[LabeledData, LabeledData, LabeledData], scratch: Path, seed: int
) -> tuple[np.ndarray, float | None, dict]:
    """Train one mode through the train stage's code; its held-out scores, calibrated cut and training summary."""
    train, val, held_out = data
    output = scratch / params.mode
    result = train_annotator(
        train, val, params=params, tasks=(TASK,), seed=seed, output_dir=output, live_dir=scratch / f"live-{params.mode}"
    )
    chosen = result.summary["selection"]["chosen"]
    max_length = params.finetune_max_length if chosen == "finetune" else params.max_length
    scores = score_texts(output, held_out.texts, max_length, Path(params.embedding_cache_dir))
    cut = AnnotatorModel.config_class.from_pretrained(output).calibrated_thresholds[0]
    return scores, cut, result.summary


Row = tuple[str, dict[str, float], str, float]


def run_split(
    path: Path, seed: int, args: argparse.Namespace, defaults: TrainingParams, overrides: dict, preamble: str
) -> list[Row]:
    """Every contender on one seeded split; prints the split's line (then ``preamble``, if any) and its table."""
    data = split(path, seed)
    train, val, held_out = data
    print(
        f"data: {path.name}; split seed {seed}, stratified by score: {len(train)} train, {len(val)} val "
        f"(selection), {len(held_out)} held out (reported); positives (score >= 3) held out: "
        f"{int((held_out.labels >= 3).sum())}"
    )
    if preamble:
        print(preamble)
    rows: list[Row] = []
    start = time.perf_counter()
    baseline, cut, chosen = tfidf_ridge(train, val, held_out)
    rows.append(
        ("TF-IDF 1-2-grams + ridge (baseline)", metrics(baseline, held_out, cut), chosen, time.perf_counter() - start)
    )
    start = time.perf_counter()
    characters, cut = char_tfidf(train, val, held_out)
    rows.append(
        (
            "TF-IDF char n-grams (evaluate's)",
            metrics(characters, held_out, cut),
            "defaults",
            time.perf_counter() - start,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        overrides = {**overrides, "checkpoint_dir": str(args.checkpoint_dir or scratch / "checkpoints")}
        modes = [m for m in MODES if m in args.modes]
        if "auto" in modes:  # auto reuses the checkpoints of both candidates: train them first
            modes = ["frozen", "finetune", "auto"]
        for mode in modes:
            params = dataclasses.replace(defaults, mode=mode, **overrides)
            start = time.perf_counter()
            scores, cut, summary = ours(params, data, scratch, seed)
            selection = summary["selection"]
            tried = ", ".join(f"{m} {c['value']:.4f}" for m, c in selection["candidates"].items())
            shown_cut = f"{cut:.3f}" if cut is not None else "none"
            note = f"kept {selection['chosen']} (val {selection['metric']} {tried}); cut {shown_cut}"
            capped = mode != "frozen" and (args.finetune_epochs or args.finetune_max_length)
            label = f"ours: mode {mode}" + (
                " (default" + (", capped)" if capped else ")") if mode == defaults.mode else ""
            )
            rows.append((label, metrics(scores, held_out, cut), note, time.perf_counter() - start))
    print(f"{'model':38s} " + " ".join(f"{m:>13s}" for m in SHOWN) + "   seconds  selection")
    for name, values, note, seconds in rows:
        print(f"{name:38s} " + " ".join(f"{values[m]:13.4f}" for m in SHOWN) + f" {seconds:9.1f}  {note}")
    base = rows[0][1]
    for name, values, _, _ in rows[1:]:
        verdict = ", ".join(
            f"{m} {values[m] - base[m]:+.4f} ({'better' if values[m] > base[m] else 'not better'})" for m in MARGINS
        )
        print(f"{name} vs baseline: {verdict}")
    return rows


def summarise(seeds: list[int], runs: list[list[Row]]) -> None:
    """Mean ± sd over seeds per contender, and the paired margin over the baseline (row 0) per seed."""
    print(f"\nover {len(seeds)} split seeds ({' '.join(map(str, seeds))}): mean ± sd (sample sd), then per seed")
    for m in MARGINS:
        print(f"{m:38s} {'mean':>8s} {'sd':>7s}   " + " ".join(f"{s:>7d}" for s in seeds))
        for index, (name, *_) in enumerate(runs[0]):
            values = np.array([rows[index][1][m] for rows in runs])
            print(
                f"{name:38s} {values.mean():8.4f} {values.std(ddof=1):7.4f}   " + " ".join(f"{v:7.4f}" for v in values)
            )
    for index, (name, *_) in enumerate(runs[0][1:], start=1):
        for m in MARGINS:
            margins = np.array([rows[index][1][m] - rows[0][1][m] for rows in runs])
            mean, sd = margins.mean(), margins.std(ddof=1)
            se = sd / np.sqrt(len(margins))
            print(
                f"{name} − baseline, {m}: " + " ".join(f"{v:+.4f}" for v in margins) + f"; mean {mean:+.4f} ± sd "
                f"{sd:.4f} (se {se:.4f}, mean/se {mean / se if se > 0 else float('inf'):.1f}); positive on "
                f"{int((margins > 0).sum())} of {len(margins)} seeds"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=None, help=f"{DATA_NAME} (default: the shared data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="one split (and training seed) each")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="its training section is used")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--finetune-epochs", type=int, help="caps fine-tuning cost (default: params.yaml)")
    parser.add_argument("--finetune-max-length", type=int, help="(default: params.yaml)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".mlfilter/embeddings"), help="embedding cache")
    parser.add_argument(
        "--checkpoint-dir", type=Path, help="keeps the runs' checkpoints: a rerun resumes (default: a temporary folder)"
    )
    args = parser.parse_args()
    path = args.path or next((p for p in DATA_CANDIDATES if p.exists()), DATA_CANDIDATES[0])
    if not path.exists():
        raise SystemExit(f"data not found: {path} (pass the path of {DATA_NAME})")
    hf_logging.set_verbosity_error()
    torch.set_num_threads(os.cpu_count() or 1)
    defaults: TrainingParams = load_section("training", args.params)
    overrides: dict = {"embedding_cache_dir": str(args.cache_dir), "keep_checkpoints": True}
    if args.finetune_epochs:
        overrides["finetune_num_epochs"] = args.finetune_epochs
    if args.finetune_max_length:
        overrides["finetune_max_length"] = args.finetune_max_length
    tuned = dataclasses.replace(defaults, **overrides)
    described = (
        f"params.yaml training: mode {defaults.mode}; frozen: {tuned.max_length} tok, lr {tuned.learning_rate:g}, "
        f"{tuned.num_epochs} ep; finetune: {tuned.finetune_max_length} tok, lr {tuned.finetune_learning_rate:g}, "
        f"{tuned.finetune_num_epochs} ep"
    )
    runs = [
        run_split(path, seed, args, defaults, overrides, described if n == 0 else "")
        for n, seed in enumerate(args.seeds)
    ]
    if len(runs) > 1:
        summarise(args.seeds, runs)


if __name__ == "__main__":
    main()
