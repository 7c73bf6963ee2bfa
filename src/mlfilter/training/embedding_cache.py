"""On-disk cache of pooled document embeddings, keyed by the encoder and by each text's hash.

One folder per encoder fingerprint (weights, tokenizer, pooling, max length, precision) under
``.mlfilter/embeddings/``; inside it, shards of ``(text hash, embedding)`` pairs written atomically
as ``<shard>.emb.npy`` then ``<shard>.keys.npy`` (the keys file is the completion marker). A text
is embedded once per encoder, whatever split or experiment it appears in, and an interrupted run
keeps every shard it finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from mlfilter.atomic import atomic_path

#: Bump when the way embeddings are computed changes, so old caches are not reused.
CACHE_FORMAT = 1
KEY_BYTES = 16


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """A 16-byte hash per text, as a ``[n, 16]`` uint8 array."""
    keys = np.empty((len(texts), KEY_BYTES), dtype=np.uint8)
    for row, text in enumerate(texts):
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest()
        keys[row] = np.frombuffer(digest, dtype=np.uint8)
    return keys


def encoder_fingerprint(
    encoder: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, *, pooling: str, max_length: int, precision: str
) -> str:
    """A hash of everything that determines an embedding: weights, tokenizer, pooling, length, precision."""
    digest = hashlib.blake2b(digest_size=16)
    settings = {"format": CACHE_FORMAT, "pooling": pooling, "max_length": max_length, "precision": precision}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(type(encoder).__name__.encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        data = tensor.detach().to("cpu").contiguous()
        digest.update(str(data.dtype).encode())
        digest.update(memoryview(data.view(torch.uint8).numpy()))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Truncation and padding settings change whenever the tokenizer is called: leave them out.
        definition = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        digest.update(json.dumps(definition, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class EmbeddingCache:
    """The cached embeddings of one encoder fingerprint."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.folder = Path(root) / fingerprint
        self._index: dict[bytes, tuple[str, int]] | None = None

    def index(self) -> dict[bytes, tuple[str, int]]:
        """Text hash → (shard name, row) over every finished shard."""
        if self._index is None:
            self._index = {}
            for keys_file in sorted(self.folder.glob("*.keys.npy")):
                shard = keys_file.name.removesuffix(".keys.npy")
                for row, key in enumerate(np.load(keys_file)):
                    self._index.setdefault(key.tobytes(), (shard, row))
        return self._index

    def missing(self, keys: np.ndarray) -> list[int]:
        """Row numbers of ``keys`` with no cached embedding (first occurrence of each text only)."""
        index = self.index()
        seen: set[bytes] = set()
        rows = []
        for row, key in enumerate(keys):
            raw = key.tobytes()
            if raw not in index and raw not in seen:
                seen.add(raw)
                rows.append(row)
        return rows

    def add(self, keys: np.ndarray, embeddings: np.ndarray) -> None:
        """Write one shard atomically (embeddings first, keys last) and index it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shard = hashlib.blake2b(np.ascontiguousarray(keys).tobytes(), digest_size=12).hexdigest()
        with atomic_path(self.folder / f"{shard}.emb.npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(embeddings, dtype=np.float32))
        with atomic_path(self.folder / f"{shard}.keys.npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(keys, dtype=np.uint8))
        index = self.index()
        for row, key in enumerate(keys):
            index.setdefault(key.tobytes(), (shard, row))

    def gather(self, keys: np.ndarray, hidden_size: int) -> np.ndarray:
        """The cached embeddings of ``keys``, in order, as ``[n, hidden_size]`` float32."""
        index = self.index()
        out = np.empty((len(keys), hidden_size), dtype=np.float32)
        by_shard: dict[str, tuple[list[int], list[int]]] = {}
        for position, key in enumerate(keys):
            shard, row = index[key.tobytes()]
            positions, rows = by_shard.setdefault(shard, ([], []))
            positions.append(position)
            rows.append(row)
        for shard, (positions, rows) in by_shard.items():
            out[positions] = np.load(self.folder / f"{shard}.emb.npy", mmap_mode="r")[rows]
        return out
