"""The scoring engine: documents in, one score per task out, as fast as the hardware allows.

- Tokenization (:mod:`mlfilter.filtering.tokenize`) reads only the head of a document in truncate mode, builds
  windows with NumPy, and runs in a pool of worker processes that prepares the next windows of documents while
  the model scores this one.
- Windows of documents are sorted by token length and cut into batches under a token budget, so
  batches hold documents of similar length and carry little padding; batches are collated with NumPy into
  reused host buffers (pinned on a GPU, copied on a side stream while the previous batch computes).
- The model runs under ``torch.inference_mode`` with SDPA attention; on a GPU its encoder runs in
  bfloat16 (float16 where bfloat16 is unsupported), and in bfloat16 on CPUs with native bfloat16
  arithmetic (AVX512-BF16, AMX), while the task heads stay in float32.
- Documents longer than ``max_length`` are cut to their head or scored as overlapping windows whose
  scores are averaged or maxed; results always come back in input order.

:func:`score_texts` is the one-call entry point (used by evaluation); :class:`Scorer` streams.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from mlfilter.errors import MlfilterError
from mlfilter.filtering.compiled import CompiledEmbed
from mlfilter.filtering.params import ChunkAggregate, ScoringParams
from mlfilter.filtering.tokenize import DocumentTokenizer, Tokenized, TokenizerPool, default_workers
from mlfilter.logs import progress_bar, quiet_model_loading

T = TypeVar("T")
log = logging.getLogger("mlfilter.filter")


@dataclass(frozen=True)
class ScoredDocuments:
    """Scores ``[documents, tasks]`` (float32, input order) and document lengths in tokens.

    ``labels`` ``[documents, tasks]`` (float32, NaN for a document without windows) is the most probable class of
    each task of a classification head — argmax of the class probabilities, averaged over a document's windows
    (``chunk_aggregate: mean``) or their per-class maximum (``max``) — while ``scores`` is its expected value.
    None for regression heads, whose label is the score rounded half up (:func:`mlfilter.scores.to_int_score`).
    """

    scores: np.ndarray
    tokens: np.ndarray
    labels: np.ndarray | None = None


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


def collate(tokenized: Tokenized, windows: np.ndarray, width: int, pad_token_id: int, out: np.ndarray) -> None:
    """Write windows ``windows`` of ``tokenized`` as rows of ``out[:len(windows), :width]``, padded (vectorised).

    ``out`` is int64 with at least ``len(windows)`` rows and ``width`` columns; the attention mask of a row is
    its positions below the window's length.
    """
    lengths = tokenized.lengths[windows]
    columns = np.arange(width)
    mask = columns[None, :] < lengths[:, None]
    index = np.minimum(tokenized.offsets[windows][:, None] + columns[None, :], max(len(tokenized.ids) - 1, 0))
    view = out[: len(windows), :width]
    if len(tokenized.ids):
        np.copyto(view, np.where(mask, tokenized.ids[index], pad_token_id))
    else:
        view.fill(pad_token_id)


class ModelRunner:
    """Runs an :class:`~mlfilter.modeling.AnnotatorModel` over token windows in length-sorted batches.

    Batches are collated with NumPy into a reused host buffer. On a GPU, two pinned host buffers take turns: a
    batch is copied to the device on a side stream while the previous batch computes, and the buffer it used is
    refilled only once that copy is done; scores stay on the device until the whole window is through.
    """

    def __init__(self, model: torch.nn.Module, pad_token_id: int, options: ScoringParams) -> None:
        self.model = model.eval()
        self.pad_token_id = pad_token_id
        self.options = options
        self.device = next(model.parameters()).device
        self.multiple = 8 if self.device.type == "cuda" else 1
        self.token_budget = options.token_budget or (32768 if self.device.type == "cuda" else 4096)
        self._buffers: list[torch.Tensor] = []
        self._copied: list[Any] = []
        self.embed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = (
            CompiledEmbed(model) if options.compile else model.embed
        )

    @property
    def num_tasks(self) -> int:
        """Number of scores per document."""
        return len(self.model.config.task_names)

    def _host_buffer(self, slot: int, rows: int, width: int) -> torch.Tensor:
        """Host buffer ``slot`` with room for ``rows x width`` ids (pinned on a GPU), grown when too small."""
        while len(self._buffers) <= slot:
            self._buffers.append(torch.empty(0, dtype=torch.int64))
            self._copied.append(None)
        if self._buffers[slot].numel() < rows * width:
            size = max(rows * width, self.token_budget + self.options.max_length)
            self._buffers[slot] = torch.empty(size, dtype=torch.int64, pin_memory=self.device.type == "cuda")
        return self._buffers[slot][: rows * width].view(rows, width)

    def _to_device(self, tokenized: Tokenized, batch: np.ndarray, slot: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Input ids and attention mask of the windows ``batch`` on the model's device."""
        lengths = tokenized.lengths[batch]
        width = max(1, -(-int(lengths.max()) // self.multiple) * self.multiple)
        cuda = self.device.type == "cuda"
        if cuda and slot < len(self._copied) and self._copied[slot] is not None:
            self._copied[slot].synchronize()
        host = self._host_buffer(slot, len(batch), width)
        collate(tokenized, batch, width, self.pad_token_id, host.numpy())
        if not cuda:
            return host, _positions(width, lengths).to(torch.int64)
        stream = self._stream()
        with torch.cuda.stream(stream):
            ids = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(stream)
        self._copied[slot] = event
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(event)
        ids.record_stream(compute)
        lengths_device = torch.from_numpy(lengths).to(self.device)
        mask = torch.arange(width, device=self.device)[None, :] < lengths_device[:, None]
        return ids, mask.to(torch.int64)

    def _stream(self) -> Any:
        if not hasattr(self, "_copy_stream"):
            self._copy_stream = torch.cuda.Stream(self.device)
        return self._copy_stream

    def __call__(
        self, tokenized: Tokenized, on_windows: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores ``[documents, tasks]`` in document order (NaN for a document without windows), and the argmax
        labels of classification heads (None for regression heads; see :class:`ScoredDocuments`);
        ``on_windows(n)`` is told of each batch of ``n`` windows run."""
        lengths = tokenized.lengths
        config = self.model.config
        window_scores = np.empty((len(lengths), self.num_tasks), dtype=np.float32)
        window_probabilities = (
            None
            if config.is_regression
            else np.empty((len(lengths), sum(config.num_targets_per_task)), dtype=np.float32)
        )
        outputs = []
        with torch.inference_mode():
            batches = plan_batches(lengths, self.token_budget, self.options.max_batch_size, self.multiple)
            for number, batch in enumerate(batches):
                ids, mask = self._to_device(tokenized, batch, number % 2)
                embeddings = self.embed(ids, mask).float()
                outputs.append((batch, self.model.forward_embeddings(embeddings)))
                if on_windows is not None:
                    on_windows(len(batch))
            for batch, output in outputs:
                window_scores[batch] = output.scores.float().cpu().numpy()
                if window_probabilities is not None:
                    window_probabilities[batch] = class_probabilities(
                        output.logits.float(), config.num_targets_per_task
                    )
        how = self.options.chunk_aggregate
        scores = aggregate_windows(window_scores, tokenized.window_doc, tokenized.num_docs, how)
        if window_probabilities is None:
            return scores, None
        probabilities = aggregate_windows(window_probabilities, tokenized.window_doc, tokenized.num_docs, how)
        return scores, argmax_labels(probabilities, config.num_targets_per_task)


def class_probabilities(logits: torch.Tensor, num_targets: Sequence[int]) -> np.ndarray:
    """Softmax of each task's class logits ``[rows, sum(num_targets)]``, concatenated in task order (float32)."""
    parts = torch.split(logits, list(num_targets), dim=-1)
    return torch.cat([part.softmax(-1) for part in parts], dim=-1).cpu().numpy()


def argmax_labels(probabilities: np.ndarray, num_targets: Sequence[int]) -> np.ndarray:
    """The most probable class of each task ``[rows, tasks]`` (float32; NaN where a row's probabilities are NaN).

    Ties go to the lower class (NumPy's argmax).
    """
    columns, start = [], 0
    for k in num_targets:
        part = probabilities[:, start : start + k]
        missing = np.isnan(part).any(axis=1)
        columns.append(np.where(missing, np.nan, np.nan_to_num(part, nan=-1.0).argmax(axis=1)))
        start += k
    return np.stack(columns, axis=1).astype(np.float32)


def _positions(width: int, lengths: np.ndarray) -> torch.Tensor:
    """Boolean ``[rows, width]``: True at positions below each row's length."""
    return torch.from_numpy(np.arange(width)[None, :] < lengths[:, None])


class Scorer:
    """Tokenizer and model together: scores lists of texts, or a stream of windows of documents."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, options: ScoringParams | None = None) -> None:
        self.options = options or ScoringParams()
        self.model = model
        self.tokenizer = DocumentTokenizer(tokenizer, self.options)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.runner = ModelRunner(model, pad, self.options)
        self._pool: TokenizerPool | None = None

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

    @property
    def tokenize_workers(self) -> int:
        """Tokenizer processes of :meth:`score_stream` (``options.tokenize_workers``; 0 picks by device)."""
        return self.options.tokenize_workers or default_workers(self.runner.device.type)

    def score(self, texts: Sequence[str], desc: str | None = None) -> ScoredDocuments:
        """Score a list of texts in this process; results in input order. With ``desc``, a progress bar so
        labelled counts the token windows run (one per document, more with ``long_documents: chunk``)."""
        tokenized = self.tokenizer(texts)
        if desc is None:
            scores, labels = self.runner(tokenized)
        else:
            with progress_bar(desc=desc, total=len(tokenized.lengths), unit="window") as bar:
                scores, labels = self.runner(tokenized, bar.update)
        return ScoredDocuments(scores, tokenized.tokens, labels)

    def score_stream(
        self, windows: Iterable[list[T]], text_of: Callable[[T], str], prefetch: int = 2
    ) -> Iterator[tuple[list[T], ScoredDocuments]]:
        """Score successive windows of items; the next ``prefetch`` windows tokenize (in the tokenizer pool, which
        stays up for later calls until :meth:`close`) while this one runs on the model."""
        if self._pool is None:
            self._pool = TokenizerPool(self.tokenizer, self.tokenize_workers).__enter__()
        pending: deque[tuple[list[T], Any]] = deque()
        for items in windows:
            pending.append((items, self._pool.submit([text_of(item) for item in items])))
            if len(pending) > prefetch:
                yield self._finish(*pending.popleft())
        while pending:
            yield self._finish(*pending.popleft())

    def close(self) -> None:
        """Stop the tokenizer processes (started by the first :meth:`score_stream`, kept for the next ones)."""
        if self._pool is not None:
            self._pool.__exit__(None, None, None)
            self._pool = None

    def _finish(self, items: list[T], future: Any) -> tuple[list[T], ScoredDocuments]:
        tokenized = future.result()
        scores, labels = self.runner(tokenized)
        return items, ScoredDocuments(scores, tokenized.tokens, labels)


def score_texts(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], **options: Any) -> np.ndarray:
    """Scores ``[len(texts), num_tasks]`` (float32, input order) of an AnnotatorModel on its current device.

    ``options`` are :class:`~mlfilter.filtering.params.ScoringParams` fields such as ``max_length``,
    ``long_documents`` (``"truncate"`` or ``"chunk"``), ``chunk_aggregate``, ``token_budget``.
    """
    return score_documents(model, tokenizer, texts, **options).scores


def score_documents(
    model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], desc: str | None = None, **options: Any
) -> ScoredDocuments:
    """:func:`score_texts` with the token counts and the argmax labels of classification heads; ``desc`` labels a
    progress bar (see :meth:`Scorer.score`)."""
    return Scorer(model, tokenizer, dataclasses.replace(ScoringParams(), **options)).score(texts, desc)


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
    quiet_model_loading()
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
