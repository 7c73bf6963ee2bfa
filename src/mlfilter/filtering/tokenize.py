"""Texts → token windows, fast enough that the host never starves the model.

- **Character cut (truncate mode).** Only the head of a document is scored, so only its head is tokenized: the
  text is cut at the first white space after ``CHARS_PER_TOKEN * body`` characters (``body`` = text tokens per
  window). Word-level pre-tokenizers (WordPiece, byte-level BPE, SentencePiece's Metaspace) tokenize each word
  on its own, so a cut at a word boundary keeps the head's tokens exactly. A cut head that yields fewer than
  ``body + MARGIN`` tokens (white-space-heavy text, no white space, very long words) is tokenized again from the
  whole text, so the windows always equal those of the whole document.
- **Token counts.** ``Tokenized.tokens`` is exact for documents tokenized whole (every document in chunk mode,
  and in truncate mode the ones shorter than the cut); for a cut document it is the estimate
  ``len(text) * head_tokens / len(head)`` — the head's tokens per character times the document's characters
  (``tokens_exact`` tells which).
- **Word cache.** BERT-style (WordPiece) tokenizers are served by
  :class:`~mlfilter.filtering.word_cache.WordPieceCache`: the same ids, from a cache of words' ids, so only words
  not seen before reach the Rust tokenizer; other tokenizers run ``encode_batch_fast`` on every text.
- **Vectorised windows.** Windows are assembled with NumPy index arithmetic, not per-row Python lists.
- **Process pool.** :class:`TokenizerPool` spreads tokenization over worker processes (one Rust thread each),
  one chunk of each window of documents per worker.

This module does not import torch, so pool workers start quickly.
"""

from __future__ import annotations

import copy
import itertools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlfilter.errors import MlfilterError
from mlfilter.filtering.params import ScoringParams
from mlfilter.filtering.word_cache import word_cache_for

#: Characters kept per text token before the cut: web text averages 3–5 characters per subword token.
CHARS_PER_TOKEN = 6
#: Extra tokens a cut head must yield beyond the window's text tokens to be used as it is.
MARGIN = 16


@dataclass(frozen=True)
class Tokenized:
    """Token windows of a list of documents, stored flat.

    Window ``w`` is ``ids[offsets[w]:offsets[w + 1]]`` (special tokens included) and belongs to document
    ``window_doc[w]``; windows are grouped by document, in document order. ``tokens[d]`` is the length
    of document ``d`` in tokens (special tokens excluded, before truncation); ``tokens_exact[d]`` is False
    where that length is an estimate (see the module docstring).
    """

    ids: np.ndarray
    offsets: np.ndarray
    window_doc: np.ndarray
    tokens: np.ndarray
    tokens_exact: np.ndarray | None = None

    @property
    def num_docs(self) -> int:
        """Number of documents."""
        return len(self.tokens)

    @property
    def lengths(self) -> np.ndarray:
        """Length of each window in tokens."""
        return np.diff(self.offsets)


def concat_tokenized(parts: Sequence[Tokenized]) -> Tokenized:
    """One :class:`Tokenized` of the documents of ``parts``, in order."""
    doc_shift = np.cumsum([0] + [p.num_docs for p in parts[:-1]])
    id_shift = np.cumsum([0] + [len(p.ids) for p in parts[:-1]])
    offsets = np.concatenate([[0]] + [p.offsets[1:] + shift for p, shift in zip(parts, id_shift, strict=True)])
    exact = [p.tokens_exact if p.tokens_exact is not None else np.ones(p.num_docs, bool) for p in parts]
    return Tokenized(
        ids=np.concatenate([p.ids for p in parts]),
        offsets=offsets.astype(np.int64),
        window_doc=np.concatenate([p.window_doc + s for p, s in zip(parts, doc_shift, strict=True)]),
        tokens=np.concatenate([p.tokens for p in parts]),
        tokens_exact=np.concatenate(exact),
    )


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The token ids a tokenizer puts before and after a single sequence (e.g. ``[CLS]`` and ``[SEP]``)."""
    probe = "scoring engine probe text"
    full = list(tokenizer(probe)["input_ids"])
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    raise MlfilterError(f"{type(tokenizer).__name__}: cannot tell which special tokens it adds around a text")


def cut_at_word(text: str, limit: int) -> str:
    """``text`` up to the first white space at or after ``limit`` characters (whole when shorter)."""
    if len(text) <= limit:
        return text
    end = limit
    while end < len(text) and not text[end].isspace():
        end += 1
        if end - limit > 256:
            break
    return text[:end]


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
        self.char_limit = (self.body + MARGIN) * CHARS_PER_TOKEN
        self.backend = copy.deepcopy(getattr(tokenizer, "backend_tokenizer", None))
        if self.backend is not None:
            # A saved tokenizer.json may carry truncation/padding (all-MiniLM-L6-v2's truncates at 128).
            self.backend.no_truncation()
            self.backend.no_padding()
        self.word_cache = word_cache_for(self.backend)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for pool workers without the transformers wrapper when the Rust backend does the work, so a
        worker need not import transformers."""
        state = dict(self.__dict__)
        if self.backend is not None:
            state["tokenizer"] = None
        return state

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

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of ``texts`` one after the other (int32, special tokens excluded) and each text's count."""
        if self.word_cache is not None:
            return self.word_cache.encode(texts)
        if self.backend is not None:
            encoded = [e.ids for e in self.backend.encode_batch_fast(texts, add_special_tokens=False)]
        else:
            encoded = self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        counts = np.fromiter(map(len, encoded), np.int64, len(encoded))
        return np.fromiter(itertools.chain.from_iterable(encoded), np.int32, int(counts.sum())), counts

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Token ids of the texts (the head only where cut) as ``flat``, with each text's ``starts`` and ``lengths``
        in ``flat`` (a text's ids are ``flat[start : start + length]``), the documents' token counts, and which
        counts are exact."""
        texts = list(texts)
        heads = texts if self.options.long_documents == "chunk" else [cut_at_word(t, self.char_limit) for t in texts]
        flat, lengths = self._encode(heads)
        starts = np.zeros(len(texts), np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        if self.options.long_documents == "chunk":
            return flat, starts, lengths, lengths, np.ones(len(texts), bool)
        text_chars = np.fromiter(map(len, texts), np.int64, len(texts))
        head_chars = np.fromiter(map(len, heads), np.int64, len(heads))
        short = np.flatnonzero((head_chars < text_chars) & (lengths < self.body + MARGIN))
        if len(short):
            again, again_lengths = self._encode([texts[i] for i in short])
            starts[short] = len(flat) + np.concatenate([[0], np.cumsum(again_lengths[:-1])])
            lengths[short] = again_lengths
            head_chars[short] = text_chars[short]
            flat = np.concatenate([flat, again])
        exact = head_chars == text_chars
        counts = np.where(exact, lengths, np.rint(lengths * text_chars / np.maximum(head_chars, 1))).astype(np.int64)
        return flat, starts, lengths, counts, exact

    def __call__(self, texts: Sequence[str]) -> Tokenized:
        """Tokenize ``texts`` into windows (head only in truncate mode, every window in chunk mode)."""
        flat, doc_starts, lengths, counts, exact = self.encode(texts)
        if self.options.long_documents == "truncate":
            window_doc = np.arange(len(lengths), dtype=np.int64)
            starts = np.zeros(len(lengths), np.int64)
        else:
            per_doc = [self.window_starts(int(n)) for n in lengths]
            window_doc = np.repeat(np.arange(len(lengths), dtype=np.int64), [len(s) for s in per_doc])
            starts = np.fromiter(itertools.chain.from_iterable(per_doc), np.int64, len(window_doc))
        body = np.clip(lengths[window_doc] - starts, 0, self.body)
        ids, offsets = self._assemble(flat, doc_starts[window_doc] + starts, body)
        return Tokenized(ids=ids, offsets=offsets, window_doc=window_doc, tokens=counts, tokens_exact=exact)

    def _assemble(self, flat: np.ndarray, sources: np.ndarray, body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows ``prefix + flat[source : source + body] + suffix``, flat, with their offsets."""
        p, s = len(self.prefix), len(self.suffix)
        sizes = body + p + s
        offsets = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        out = np.empty(int(offsets[-1]), np.int32)
        for k, token in enumerate(self.prefix):
            out[offsets[:-1] + k] = token
        for k, token in enumerate(self.suffix):
            out[offsets[:-1] + p + body + k] = token
        total = int(body.sum())
        if total:
            body_starts = np.zeros(len(body), np.int64)
            np.cumsum(body[:-1], out=body_starts[1:])
            within = np.arange(total, dtype=np.int64) - np.repeat(body_starts, body)
            out[np.repeat(offsets[:-1] + p, body) + within] = flat[np.repeat(sources, body) + within]
        return out, offsets


_WORKER_TOKENIZER: DocumentTokenizer | None = None


def _init_worker(tokenizer: DocumentTokenizer) -> None:
    global _WORKER_TOKENIZER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER_TOKENIZER = tokenizer


def _tokenize_in_worker(texts: list[str]) -> Tokenized:
    assert _WORKER_TOKENIZER is not None
    return _WORKER_TOKENIZER(texts)


def default_workers(device: str) -> int:
    """Tokenizer processes for a scorer on ``device``: the usable cores for a GPU, none (in-process) for a CPU,
    whose cores run the model."""
    if not device.startswith("cuda"):
        return 0
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class TokenizerPool:
    """Tokenizes windows of documents in ``workers`` processes (0 or 1: in this process); use as a context
    manager. :meth:`submit` returns a future of the window's :class:`Tokenized`."""

    def __init__(self, tokenizer: DocumentTokenizer, workers: int) -> None:
        self.tokenizer = tokenizer
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> TokenizerPool:
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.tokenizer,),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def submit(self, texts: list[str]) -> Future[Tokenized] | _Chunks:
        """Start tokenizing ``texts``; ``.result()`` gives their :class:`Tokenized`."""
        if self._pool is None:
            done: Future[Tokenized] = Future()
            done.set_result(self.tokenizer(texts))
            return done
        size = max(1, -(-len(texts) // self.workers))
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        return _Chunks([self._pool.submit(_tokenize_in_worker, chunk) for chunk in chunks])


class _Chunks:
    """The futures of a window's chunks; ``result()`` joins them."""

    def __init__(self, futures: list[Future[Tokenized]]) -> None:
        self.futures = futures

    def result(self) -> Tokenized:
        parts = [future.result() for future in self.futures]
        return concat_tokenized(parts) if parts else concat_tokenized([_EMPTY])


_EMPTY = Tokenized(
    ids=np.zeros(0, np.int32),
    offsets=np.zeros(1, np.int64),
    window_doc=np.zeros(0, np.int64),
    tokens=np.zeros(0, np.int64),
    tokens_exact=np.zeros(0, bool),
)
