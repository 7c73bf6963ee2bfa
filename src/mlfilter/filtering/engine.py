"""The scoring engine: documents in, one score per task out, as fast as the hardware allows.

- Tokenization runs in the fast (Rust) tokenizer, which spreads each batch over all cores, in a
  background thread that prepares the next window of documents while the model scores this one.
- Windows of documents are sorted by token length and cut into batches under a token budget, so
  batches hold documents of similar length and carry little padding.
- The model runs under ``torch.inference_mode`` with SDPA attention; on a GPU its encoder runs in
  bfloat16 (float16 where bfloat16 is unsupported), and in bfloat16 on CPUs with native bfloat16
  arithmetic (AVX512-BF16, AMX), while the task heads stay in float32.
- Documents longer than ``max_length`` are cut to their head or scored as overlapping windows whose
  scores are averaged or maxed; results always come back in input order.

:func:`score_texts` is the one-call entry point (used by evaluation); :class:`Scorer` streams.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from mlfilter.errors import MlfilterError
from mlfilter.filtering.params import ChunkAggregate, ScoringParams

T = TypeVar("T")
log = logging.getLogger("mlfilter.filter")


@dataclass(frozen=True)
class Tokenized:
    """Token windows of a list of documents, stored flat.

    Window ``w`` is ``ids[offsets[w]:offsets[w + 1]]`` (special tokens included) and belongs to document
    ``window_doc[w]``; windows are grouped by document, in document order. ``tokens[d]`` is the length
    of document ``d`` in tokens (special tokens excluded, before truncation).
    """

    ids: np.ndarray
    offsets: np.ndarray
    window_doc: np.ndarray
    tokens: np.ndarray

    @property
    def num_docs(self) -> int:
        """Number of documents."""
        return len(self.tokens)

    @property
    def lengths(self) -> np.ndarray:
        """Length of each window in tokens."""
        return np.diff(self.offsets)


@dataclass(frozen=True)
class ScoredDocuments:
    """Scores ``[documents, tasks]`` (float32, input order) and document lengths in tokens."""

    scores: np.ndarray
    tokens: np.ndarray


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The token ids a tokenizer puts before and after a single sequence (e.g. ``[CLS]`` and ``[SEP]``)."""
    probe = "scoring engine probe text"
    full = list(tokenizer(probe)["input_ids"])
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    raise MlfilterError(f"{type(tokenizer).__name__}: cannot tell which special tokens it adds around a text")


class DocumentTokenizer:
    """Turns texts into token windows of at most ``max_length`` tokens (special tokens included)."""

    def __init__(self, tokenizer: Any, options: ScoringParams) -> None:
        self.tokenizer = tokenizer
        self.options = options
        self.prefix, self.suffix = special_tokens(tokenizer)
        self.body = options.max_length - len(self.prefix) - len(self.suffix)
        if self.body < 1:
            raise MlfilterError(f"max_length {options.max_length} leaves no room for text between special tokens")
        if options.long_documents == "chunk" and options.chunk_overlap >= self.body:
            raise MlfilterError(f"chunk_overlap {options.chunk_overlap} must be below {self.body} text tokens")

    def window_starts(self, length: int) -> list[int]:
        """Where the windows of a document of ``length`` tokens start."""
        if self.options.long_documents == "truncate" or length <= self.body:
            return [0]
        step = self.body - self.options.chunk_overlap
        count = max(1, -(-(length - self.options.chunk_overlap) // step))
        starts = [i * step for i in range(count)]
        if count > self.options.max_chunks:
            picked = np.unique(np.linspace(0, count - 1, self.options.max_chunks).round().astype(int))
            starts = [starts[i] for i in picked]
        return starts

    def __call__(self, texts: Sequence[str]) -> Tokenized:
        """Tokenize ``texts`` (in parallel inside the Rust tokenizer) into windows."""
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["input_ids"]
        windows: list[list[int]] = []
        window_doc: list[int] = []
        for doc, ids in enumerate(encoded):
            for start in self.window_starts(len(ids)):
                windows.append(self.prefix + ids[start : start + self.body] + self.suffix)
                window_doc.append(doc)
        lengths = np.fromiter((len(w) for w in windows), dtype=np.int64, count=len(windows))
        offsets = np.zeros(len(windows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter(itertools.chain.from_iterable(windows), dtype=np.int32, count=int(offsets[-1]))
        return Tokenized(
            ids=flat,
            offsets=offsets,
            window_doc=np.asarray(window_doc, dtype=np.int64),
            tokens=np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded)),
        )


def plan_batches(lengths: np.ndarray, token_budget: int, max_batch_size: int, multiple: int = 1) -> list[np.ndarray]:
    """Window indices grouped into batches: longest first, each batch's padded size under ``token_budget``.

    A batch is padded to its longest window rounded up to ``multiple``; a window longer than the
    budget gets a batch of its own.
    """
    order = np.argsort(-lengths, kind="stable")
    batches = []
    i = 0
    while i < len(order):
        padded = -(-int(lengths[order[i]]) // multiple) * multiple
        size = max(1, min(max_batch_size, token_budget // max(padded, 1), len(order) - i))
        batches.append(order[i : i + size])
        i += size
    return batches


def aggregate_windows(
    window_scores: np.ndarray, window_doc: np.ndarray, num_docs: int, how: ChunkAggregate
) -> np.ndarray:
    """Document scores from window scores: the mean or max over each document's windows (NaN where none)."""
    tasks = window_scores.shape[1]
    if how == "max":
        out = np.full((num_docs, tasks), -np.inf, dtype=np.float64)
        np.maximum.at(out, window_doc, window_scores)
    else:
        out = np.zeros((num_docs, tasks), dtype=np.float64)
        np.add.at(out, window_doc, window_scores)
        out /= np.maximum(np.bincount(window_doc, minlength=num_docs), 1)[:, None]
    out[np.bincount(window_doc, minlength=num_docs) == 0] = np.nan
    return out.astype(np.float32)


class ModelRunner:
    """Runs an :class:`~mlfilter.modeling.AnnotatorModel` over token windows in length-sorted batches."""

    def __init__(self, model: torch.nn.Module, pad_token_id: int, options: ScoringParams) -> None:
        self.model = model.eval()
        self.pad_token_id = pad_token_id
        self.options = options
        self.device = next(model.parameters()).device
        self.multiple = 8 if self.device.type == "cuda" else 1
        self.token_budget = options.token_budget or (32768 if self.device.type == "cuda" else 4096)

    @property
    def num_tasks(self) -> int:
        """Number of scores per document."""
        return len(self.model.config.task_names)

    def _collate(self, tokenized: Tokenized, windows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = tokenized.lengths[windows]
        width = -(-int(lengths.max()) // self.multiple) * self.multiple
        ids = np.full((len(windows), width), self.pad_token_id, dtype=np.int64)
        for row, window in enumerate(windows):
            ids[row, : lengths[row]] = tokenized.ids[tokenized.offsets[window] : tokenized.offsets[window + 1]]
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        pin = self.device.type == "cuda"
        tensors = [torch.from_numpy(a).pin_memory() if pin else torch.from_numpy(a) for a in (ids, mask)]
        return tensors[0].to(self.device, non_blocking=pin), tensors[1].to(self.device, non_blocking=pin)

    def __call__(self, tokenized: Tokenized) -> np.ndarray:
        """Scores ``[documents, tasks]`` in document order (NaN for a document without windows)."""
        lengths = tokenized.lengths
        window_scores = np.empty((len(lengths), self.num_tasks), dtype=np.float32)
        outputs = []
        with torch.inference_mode():
            for batch in plan_batches(lengths, self.token_budget, self.options.max_batch_size, self.multiple):
                ids, mask = self._collate(tokenized, batch)
                embeddings = self.model.embed(ids, mask).float()
                outputs.append((batch, self.model.forward_embeddings(embeddings).scores.float()))
            for batch, scores in outputs:
                window_scores[batch] = scores.cpu().numpy()
        return aggregate_windows(window_scores, tokenized.window_doc, tokenized.num_docs, self.options.chunk_aggregate)


class Scorer:
    """Tokenizer and model together: scores lists of texts, or a stream of windows of documents."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, options: ScoringParams | None = None) -> None:
        self.options = options or ScoringParams()
        self.model = model
        self.tokenizer = DocumentTokenizer(tokenizer, self.options)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.runner = ModelRunner(model, pad, self.options)

    @classmethod
    def load(cls, model_path: str, options: ScoringParams | None = None) -> Scorer:
        """Load a saved model and its tokenizer on ``options.device`` in ``options.dtype``."""
        options = options or ScoringParams()
        model, tokenizer = load_model(model_path, options.device, options.dtype)
        return cls(model, tokenizer, options)

    @property
    def task_names(self) -> list[str]:
        """The model's task names, in score column order."""
        return list(self.model.config.task_names)

    def score(self, texts: Sequence[str]) -> ScoredDocuments:
        """Score a list of texts; results in input order."""
        tokenized = self.tokenizer(texts)
        return ScoredDocuments(self.runner(tokenized), tokenized.tokens)

    def score_stream(
        self, windows: Iterable[list[T]], text_of: Callable[[T], str]
    ) -> Iterator[tuple[list[T], ScoredDocuments]]:
        """Score successive windows of items, tokenizing the next window while this one runs on the model."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as pool:
            pending = None
            for items in windows:
                future = pool.submit(self.tokenizer, [text_of(item) for item in items])
                if pending is not None:
                    yield self._finish(*pending)
                pending = (items, future)
            if pending is not None:
                yield self._finish(*pending)

    def _finish(self, items: list[T], future: Any) -> tuple[list[T], ScoredDocuments]:
        tokenized = future.result()
        return items, ScoredDocuments(self.runner(tokenized), tokenized.tokens)


def score_texts(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], **options: Any) -> np.ndarray:
    """Scores ``[len(texts), num_tasks]`` (float32, input order) of an AnnotatorModel on its current device.

    ``options`` are :class:`~mlfilter.filtering.params.ScoringParams` fields such as ``max_length``,
    ``long_documents`` (``"truncate"`` or ``"chunk"``), ``chunk_aggregate``, ``token_budget``.
    """
    return Scorer(model, tokenizer, dataclasses.replace(ScoringParams(), **options)).score(texts).scores


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first CUDA GPU when there is one, else the CPU; other names pass to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MlfilterError(f"filter.scoring.device: {name!r} asked for, but torch sees no CUDA GPU")
    return device


def cpu_has_fast_bfloat16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), so bfloat16 beats float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` → bfloat16 on a GPU that supports it (else float16) and on a CPU with native bfloat16
    arithmetic; float32 on other CPUs."""
    if name != "auto":
        return getattr(torch, name)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bfloat16() else torch.float32


def load_model(model_path: str, device: str = "auto", dtype: str = "auto") -> tuple[torch.nn.Module, Any]:
    """Load a saved AnnotatorModel (SDPA attention where the encoder supports it) and its tokenizer.

    The encoder is cast to ``dtype``; the task heads stay in float32.
    """
    from transformers import AutoTokenizer

    from mlfilter.modeling import AnnotatorModel

    if not os.path.isdir(model_path):
        raise MlfilterError(f"{model_path}: model folder not found (train one with `dvc repro train`)")
    target = resolve_device(device)
    try:
        model = AnnotatorModel.from_pretrained(model_path, attn_implementation="sdpa")
    except (ValueError, ImportError) as exc:
        log.info("%s: SDPA attention unavailable (%s); using the default attention", model_path, exc)
        model = AnnotatorModel.from_pretrained(model_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        raise MlfilterError(f"{model_path}: no tokenizer saved beside the model ({exc})") from None
    model.eval().to(target)
    model.encoder.to(resolve_dtype(dtype, target))
    return model, tokenizer
