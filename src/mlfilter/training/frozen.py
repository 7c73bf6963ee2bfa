"""The frozen-encoder fast path: embed every text once (cached on disk), then train only the heads.

With the base model frozen (and kept in eval mode), a document's pooled embedding does not change
during training, so running the encoder every epoch is wasted work. This module embeds train and
val once — texts sorted by length so batches carry little padding, new texts only, cached under
``.mlfilter/embeddings/`` — and serves the embeddings to the ``Trainer`` that trains the heads.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from mlfilter.logs import progress_bar
from mlfilter.modeling import AnnotatorModel
from mlfilter.reports import Stopwatch
from mlfilter.training.embedding_cache import EmbeddingCache, encoder_fingerprint, text_keys

logger = logging.getLogger(__name__)

#: Embeddings are written to the cache in shards of this many documents (an interrupted run keeps them).
SHARD_SIZE = 2048


@dataclass
class EmbeddingStats:
    """What embedding one split cost: documents embedded now vs found in the cache, tokens, seconds."""

    documents: int = 0
    embedded: int = 0
    cached: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, other: EmbeddingStats) -> None:
        """Accumulate another split's figures."""
        self.documents += other.documents
        self.embedded += other.embedded
        self.cached += other.cached
        self.tokens += other.tokens
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, Any]:
        """Figures for the metrics JSON, with docs/s and tokens/s of the encoder work done now."""
        seconds = max(self.seconds, 1e-9)
        return {
            "documents": self.documents,
            "embedded": self.embedded,
            "cache_hits": self.cached,
            "tokens_embedded": self.tokens,
            "seconds": round(self.seconds, 3),
            "docs_per_second": round(self.embedded / seconds, 3),
            "tokens_per_second": round(self.tokens / seconds, 3),
        }


class Embedder:
    """Pooled embeddings of an :class:`AnnotatorModel`'s frozen encoder, through an on-disk cache."""

    def __init__(
        self,
        model: AnnotatorModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        cache_dir: str | Path,
        max_length: int,
        batch_size: int,
        precision: str,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.precision = precision
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        fingerprint = encoder_fingerprint(
            model.encoder,
            tokenizer,
            pooling=_pooling_key(model),
            max_length=max_length,
            precision=f"{self.device.type}-{precision}",
        )
        self.cache = EmbeddingCache(cache_dir, fingerprint)

    def embed(self, texts: list[str], desc: str = "embed") -> tuple[np.ndarray, EmbeddingStats]:
        """Embeddings ``[n, hidden]`` of ``texts`` (float32), computing only those not cached yet."""
        watch = Stopwatch()
        keys = text_keys(texts)
        todo = self.cache.missing(keys)
        stats = EmbeddingStats(documents=len(texts), embedded=len(todo), cached=len(texts) - len(todo))
        if todo:
            logger.info("%s: %d of %d texts to embed (%d cached)", desc, len(todo), len(texts), stats.cached)
            stats.tokens = self._embed_into_cache([texts[i] for i in todo], keys[todo], desc)
        embeddings = self.cache.gather(keys, self.model.embedding_size)
        stats.seconds = watch.seconds
        return embeddings, stats

    def _embed_into_cache(self, texts: list[str], keys: np.ndarray, desc: str) -> int:
        encodings = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        lengths = np.array([len(ids) for ids in encodings["input_ids"]])
        fields = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encodings]
        model = self.model.to(self.device).eval()
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)
            if self.precision in ("bf16", "fp16")
            else contextlib.nullcontext()
        )
        bar = progress_bar(desc=f"train: {desc}", total=len(texts), unit="doc")
        for start in range(0, len(texts), SHARD_SIZE):
            shard = np.arange(start, min(start + SHARD_SIZE, len(texts)))
            order = shard[np.argsort(lengths[shard], kind="stable")]
            out = np.empty((len(shard), model.embedding_size), dtype=np.float32)
            for offset in range(0, len(order), self.batch_size):
                rows = order[offset : offset + self.batch_size]
                batch = self.tokenizer.pad(
                    [{k: encodings[k][i] for k in fields} for i in rows], padding=True, return_tensors="pt"
                )
                batch = {k: v.to(self.device) for k, v in batch.items()}
                with torch.inference_mode(), autocast:
                    pooled = model.embed(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
                out[rows - start] = pooled.float().cpu().numpy()
                bar.update(len(rows))
            self.cache.add(keys[shard], out)
        bar.close()
        return int(lengths.sum())


def _pooling_key(model: AnnotatorModel) -> str:
    """The pooling as part of the cache key: the method, and the pooled layers when not only the last one."""
    layers = model.config.pooling_layers
    return model.config.pooling if layers == [-1] else f"{model.config.pooling}{layers}"


class EmbeddingDataset(Dataset):
    """Cached embeddings with their label rows (and optional per-document loss weights), in the form
    ``AnnotatorHeads.forward`` takes."""

    def __init__(self, embeddings: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> None:
        self.embeddings = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        self.labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))
        self.weights = None if weights is None else torch.from_numpy(np.asarray(weights, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {"embeddings": self.embeddings[index], "labels": self.labels[index]}
        if self.weights is not None:
            item["weights"] = self.weights[index]
        return item
