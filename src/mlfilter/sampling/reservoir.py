"""Seeded bottom-k sampling with exact deduplication, computed on compact per-document keys.

Every candidate document gets a *priority*: a keyed hash of (seed, id). Sorted by priority (then by
file and row, to break the ties of equal ids), the sample is defined without reference to the order in
which documents were read:

1. a document is a duplicate when a document before it in that order has the same id, the same
   normalized text, or the same URL (``duplicate_id``, ``duplicate_text``, ``duplicate_url``);
2. per language, the first ``k`` of the remaining documents are kept (a count target), or those whose
   priority falls below ``fraction`` of the hash range (a fraction target); the rest are ``not_sampled``.

So the result depends on the seed and the inputs only, never on how files are split across workers,
and a count target is met exactly whenever enough distinct documents exist. The keys take 40 bytes
per candidate; texts stay on disk.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urldefrag

import numpy as np
from courlan import normalize_url

from mlfilter.text import normalize_text

KEY_DTYPE = np.dtype([("priority", "<u8"), ("id", "<u8"), ("text", "<u8"), ("url", "<u8"), ("language", "<U12")])
HASH_SPACE = 1 << 64
NO_URL = 0
DEDUP_REASONS = {"id": "duplicate_id", "text": "duplicate_text", "url": "duplicate_url"}


def _hash64(data: str, key: bytes = b"") -> int:
    digest = hashlib.blake2b(data.encode("utf-8", "surrogatepass"), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "big")


def priority(seed: int, doc_id: str) -> int:
    """The document's sampling priority: a 64-bit keyed BLAKE2b hash of its id, keyed by the seed."""
    return _hash64(doc_id, key=seed.to_bytes(8, "big", signed=True))


def fraction_threshold(fraction: float) -> int:
    """Priorities below this value are inside a fraction target."""
    return min(int(fraction * HASH_SPACE), HASH_SPACE)


def normalize_document_url(url: str) -> str:
    """The URL compared by exact dedup: courlan's normalization (host case, default ports, query order,
    tracking parameters) without the fragment."""
    try:
        normalized = normalize_url(url)
    except ValueError:
        normalized = url.strip()
    return urldefrag(normalized).url


def document_keys(seed: int, doc_id: str, text: str, url: str | None, language: str) -> tuple:
    """One row of :data:`KEY_DTYPE` for a candidate document."""
    url_key = (_hash64(normalize_document_url(url)) or 1) if url else NO_URL
    return (priority(seed, doc_id), _hash64(doc_id), _hash64(normalize_text(text)), url_key, language)


def _below(priorities: np.ndarray, limit: int) -> np.ndarray:
    if limit >= HASH_SPACE:
        return np.ones(len(priorities), dtype=bool)
    return priorities < np.uint64(limit)


@dataclass
class Selection:
    """The outcome for every candidate: kept or the reason it was dropped, plus per-language counts."""

    kept: np.ndarray  # bool per candidate, in input order
    dropped: Counter[str]
    eligible: Counter[str]  # per language, after dedup
    kept_per_language: Counter[str]


def select(
    keys: np.ndarray,
    files: np.ndarray,
    rows: np.ndarray,
    *,
    targets: Mapping[str, int],
    fractions: Mapping[str, float],
    dedup: tuple[str, ...] = ("text", "url"),
) -> Selection:
    """Deduplicate and sample the candidates described by ``keys`` (see the module docstring).

    ``files`` and ``rows`` give each candidate's input file index and row in it: they break ties.
    """
    n = len(keys)
    order = np.lexsort((rows, files, keys["priority"]))
    ranked = keys[order]
    alive = np.ones(n, dtype=bool)
    dropped: Counter[str] = Counter()
    for field in ("id", *dedup):
        values = ranked[field]
        duplicate = np.ones(n, dtype=bool)
        duplicate[np.unique(values, return_index=True)[1]] = False
        if field == "url":
            duplicate &= values != NO_URL
        newly = alive & duplicate
        dropped[DEDUP_REASONS[field]] += int(newly.sum())
        alive &= ~duplicate
    kept_ranked = np.zeros(n, dtype=bool)
    eligible: Counter[str] = Counter()
    kept_per_language: Counter[str] = Counter()
    for language in sorted({*targets, *fractions}):
        candidates = np.flatnonzero(alive & (ranked["language"] == language))
        eligible[language] = len(candidates)
        if language in targets:
            chosen = candidates[: targets[language]]
        else:
            chosen = candidates[_below(ranked["priority"][candidates], fraction_threshold(fractions[language]))]
        kept_ranked[chosen] = True
        kept_per_language[language] = len(chosen)
    dropped["not_sampled"] += int((alive & ~kept_ranked).sum())
    kept = np.zeros(n, dtype=bool)
    kept[order[kept_ranked]] = True
    return Selection(
        kept=kept,
        dropped=+dropped,
        eligible=eligible,
        kept_per_language=kept_per_language,
    )
