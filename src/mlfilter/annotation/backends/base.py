"""What every backend produces: prepared requests with their cache keys."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PreparedRequest:
    """One request: its cache key, what the backend sends, and the prompt size in characters."""

    key: str
    payload: Any
    prompt_chars: int


def request_key(backend: str, generation: int, canonical: bytes) -> str:
    """The cache key: SHA-256 of the backend kind, the generation index and the canonical request.

    ``canonical`` holds the model, the rendered prompt and the sampling parameters (sorted-key JSON),
    never an endpoint URL or a key, so every node and every rerun shares the entry.
    """
    digest = hashlib.sha256(f"{backend}\x00{generation}\x00".encode())
    digest.update(canonical)
    return digest.hexdigest()


def request_seed(seed: int, canonical: bytes, generation: int) -> int:
    """The seed of one request: from the user's ``seed``, the request's content and the generation index.

    The first 31 bits of SHA-256(seed, generation, canonical request without a seed): the same request
    always draws the same numbers (reproducible runs, stable cache keys), while two documents — or two
    generations of one document — draw independent ones. A plain ``seed + generation`` would give every
    document the same random numbers, so with temperature > 0 all documents would share one sampling path.
    Result: an int in ``[0, 2**31)``, which every OpenAI-compatible server accepts.
    """
    digest = hashlib.sha256(f"seed\x00{seed}\x00{generation}\x00".encode())
    digest.update(canonical)
    return int.from_bytes(digest.digest()[:4], "big") & 0x7FFFFFFF
