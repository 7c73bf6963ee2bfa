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
