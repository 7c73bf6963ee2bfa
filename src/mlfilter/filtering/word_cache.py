"""Exact tokenization of BERT-style (WordPiece) tokenizers through a cache of words' token ids.

A BERT tokenizer (``BertNormalizer`` → ``BertPreTokenizer`` → ``WordPiece``) normalizes character by character,
splits at white space and punctuation, and tokenizes each word on its own, so a text's token ids are the
concatenation of the ids of its white-space-separated chunks. Web text repeats its words (Zipf), so after a few
thousand documents almost every chunk is a dictionary hit: tokenizing becomes ``str.split`` plus one dict lookup
per word, all in C loops, and only new chunks go to the Rust tokenizer (in one batch per call).

The equality is checked, not assumed:

- :func:`word_cache_for` accepts only a tokenizer whose ``tokenizer.json`` has exactly that normalizer,
  pre-tokenizer and model, and whose added tokens hold no white space (an added token spanning white space
  would be cut in two); any other tokenizer gets ``None`` and the caller tokenizes whole texts.
- Python's ``str.split`` splits at every character ``str.isspace`` accepts. Each of these is probed once with
  the real tokenizer: a separator (``"a<c>b"`` tokenizes as ``"a"`` then ``"b"``) is fine; a text holding one
  the normalizer deletes (``clean_text`` drops control characters such as ``\\x0b``, ``\\x1c``–``\\x1f``, ``\\x85``,
  which Python counts as white space) is tokenized whole, uncached; any other behaviour refuses the cache.
- The cache's answer on a probe text must equal the tokenizer's, or the cache is refused.

``tests/filtering/test_word_cache.py`` pins the equality on real multilingual documents and hard texts.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from mlfilter.errors import MlfilterError

#: Words kept before the cache is emptied (about 120 bytes each: some 120 MB per tokenizing process).
CAPACITY = 1 << 20
_PROBE = "Scoring probe: naïve café, [CLS] tokens; 東京 e-mail!  Ünïcödé\tdone."


@cache
def python_white_space() -> str:
    """Every character ``str.split`` splits at (``str.isspace``)."""
    return "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())


class WordPieceCache:
    """Token ids of texts, equal to ``backend.encode_batch_fast(texts, add_special_tokens=False)``, from a cache of
    white-space-separated chunks (see the module docstring). Build with :func:`word_cache_for`.

    A cached word maps to a slot; slot ``s`` holds the ids ``pool[starts[s] : starts[s] + lengths[s]]``, so a
    text's ids are gathered with NumPy, not per token in Python. ``deleted`` are the characters the tokenizer's
    normalizer deletes although ``str.split`` splits at them; a text holding one is tokenized whole, uncached.
    The cache is emptied when it holds more than ``capacity`` words. ``looked_up`` counts the words looked up,
    ``tokenized`` the distinct words not found, which the tokenizer then tokenized.
    """

    def __init__(self, backend: Any, deleted: str, capacity: int = CAPACITY) -> None:
        self.backend = backend
        self.capacity = capacity
        self.looked_up = self.tokenized = 0
        self._deleted = re.compile(f"[{re.escape(deleted)}]") if deleted else None
        self.clear()

    def clear(self) -> None:
        """Forget every cached word."""
        self.words: dict[str, int] = {}
        self._starts = np.zeros(0, np.int64)
        self._lengths = np.zeros(0, np.int64)
        self._pool = np.zeros(0, np.int32)
        self._used = 0

    def __getstate__(self) -> dict[str, Any]:
        """Pickled empty: each tokenizing process fills its own cache."""
        state = dict(self.__dict__)
        state.update(words={}, _starts=self._starts[:0], _lengths=self._lengths[:0], _pool=self._pool[:0], _used=0)
        return state

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of all ``texts`` one after the other (int32, special tokens excluded) and each text's count."""
        per_text = [text.split() for text in texts]
        deleted = self._deleted
        whole = [text for text in texts if deleted.search(text)] if deleted is not None else []
        if whole:
            per_text = [[text] if text in whole else words for text, words in zip(texts, per_text, strict=True)]
        words = list(itertools.chain.from_iterable(per_text))
        if len(self.words) > self.capacity or self._used > 64 * self.capacity:
            self.clear()
        slots = np.fromiter(map(self.words.get, words, itertools.repeat(-1)), np.int64, len(words))
        missed = slots < 0
        self.looked_up += len(words)
        if missed.any():
            missed_words = list(itertools.compress(words, missed.tolist()))
            new = list(dict.fromkeys(missed_words))
            self.tokenized += len(new)
            self._add(new, *self._tokenize_words(new))
            slots[missed] = np.fromiter(map(self.words.__getitem__, missed_words), np.int64, len(missed_words))
            for text in whole:
                self.words.pop(text, None)
        lengths = self._lengths[slots]
        ends = np.zeros(len(words) + 1, np.int64)
        np.cumsum(lengths, out=ends[1:])
        word_ends = np.cumsum(np.fromiter(map(len, per_text), np.int64, len(per_text)))
        counts = np.diff(ends[np.concatenate([[0], word_ends])])
        flat = self._pool[np.repeat(self._starts[slots] - ends[:-1], lengths) + np.arange(ends[-1])]
        return flat, counts

    def _tokenize_words(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of ``words`` one after the other and each word's count, from one call of the tokenizer on the
        words joined by spaces (a call per word costs twice as much): each token belongs to the word its first
        character's offset falls in."""
        joined = self.backend.encode(" ".join(words), add_special_tokens=False)
        sizes = np.fromiter(map(len, words), np.int64, len(words)) + 1
        word_starts = np.cumsum(sizes) - sizes
        offsets = np.asarray(joined.offsets, np.int64).reshape(-1, 2)
        owner = np.searchsorted(word_starts, offsets[:, 0], side="right") - 1
        if len(owner) and (owner[0] < 0 or np.any(np.diff(owner) < 0)):
            raise MlfilterError("tokenizer offsets out of order: cannot assign tokens to words")
        return np.asarray(joined.ids, np.int32), np.bincount(owner, minlength=len(words))

    def _add(self, words: list[str], ids: np.ndarray, lengths: np.ndarray) -> None:
        """Cache ``words`` with their token ids (``ids`` one word after the other, ``lengths`` per word)."""
        begin, self._used = self._used, self._used + len(ids)
        if self._used > len(self._pool):
            self._pool = np.resize(self._pool, max(2 * len(self._pool), self._used))
        self._pool[begin : self._used] = ids
        starts = begin + np.cumsum(lengths) - lengths
        first = len(self._starts)
        self._starts = np.concatenate([self._starts, starts])
        self._lengths = np.concatenate([self._lengths, lengths])
        self.words.update(zip(words, range(first, first + len(words)), strict=True))


def word_cache_for(backend: Any) -> WordPieceCache | None:
    """A :class:`WordPieceCache` for a Rust ``tokenizers.Tokenizer`` whose tokenization it reproduces exactly, else
    ``None`` (see the module docstring for the checks)."""
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    kinds = [(spec.get(part) or {}).get("type") for part in ("normalizer", "pre_tokenizer", "model")]
    if kinds != ["BertNormalizer", "BertPreTokenizer", "WordPiece"]:
        return None
    if any(re.search(r"\s", token["content"]) for token in spec.get("added_tokens", [])):
        return None

    def ids(text: str) -> list[int]:
        return backend.encode(text, add_special_tokens=False).ids

    apart, together = ids("a") + ids("b"), ids("ab")
    deleted = []
    for char in python_white_space():
        joined = ids(f"a{char}b")
        if joined == together and joined != apart:
            deleted.append(char)
        elif joined != apart:
            return None
    cache = WordPieceCache(backend, "".join(deleted))
    flat, _ = cache.encode([_PROBE])
    return cache if flat.tolist() == ids(_PROBE) else None
