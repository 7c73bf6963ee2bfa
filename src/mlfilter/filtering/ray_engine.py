"""The ``ray`` engine: the same shards, markers and outputs as ``local``, scored on a Ray cluster.

Scoring is a Ray Data pipeline: **read** (CPU tasks read each shard and tokenize its documents into
windows) → ``map_batches`` over an **actor pool of scorers** (each holds the model, on a GPU of its
own where the cluster has GPUs) → **write** (the driver receives the scores in shard order and
writes each shard's attributes file and marker as soon as the shard is complete). Filtering the
scored shards runs as one Ray task per shard. Output folders must be on storage the driver and
workers share (the same machine, or a shared filesystem).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from mlfilter.classifiers.base import ENCODER, classifier_kind, load_classifier
from mlfilter.errors import MlfilterError
from mlfilter.filtering.engine import ModelRunner, load_model
from mlfilter.filtering.keep_rules import KeepDecision
from mlfilter.filtering.params import RayParams, ScoringParams
from mlfilter.filtering.shards import (
    AttributeWriter,
    ShardJob,
    ShardOutcome,
    ShardReader,
    ShardSettings,
    apply_shard,
    is_empty_text,
    windows_of,
)
from mlfilter.filtering.text_scorer import TextClassifierScorer
from mlfilter.filtering.tokenize import DocumentTokenizer, Tokenized
from mlfilter.ray_cluster import RayCluster, import_ray

log = logging.getLogger("mlfilter.filter")


def _ray() -> Any:
    return import_ray("runtime.filter.engine")


def _schema(payload: Any) -> Any:
    """Rows of the read step: a document (or a shard's ``end`` row) with ``payload``, its token windows or scores."""
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),
            ("kind", pa.string()),
            ("id", pa.string()),
            ("language", pa.string()),
            ("tokens", pa.int64()),
            ("empty", pa.bool_()),
            payload,
            ("info", pa.string()),
        ]
    )


def scores_to_arrow(scores: np.ndarray) -> Any:
    """A ``fixed_size_list<float32>`` column: one row of scores per document."""
    import pyarrow as pa

    flat = pa.array(scores.astype(np.float32).ravel(), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, scores.shape[1])


def tokenized_to_arrow(tokenized: Tokenized) -> Any:
    """A ``list<list<int32>>`` column: the token windows of each document."""
    import pyarrow as pa

    inner = pa.ListArray.from_arrays(pa.array(tokenized.offsets.astype(np.int32)), pa.array(tokenized.ids))
    per_doc = np.searchsorted(tokenized.window_doc, np.arange(tokenized.num_docs + 1)).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(per_doc), inner)


def tokenized_from_arrow(windows: Any, tokens: np.ndarray) -> Tokenized:
    """The inverse of :func:`tokenized_to_arrow` (documents without windows get none)."""
    import pyarrow.compute as pc

    outer = windows.combine_chunks() if hasattr(windows, "combine_chunks") else windows
    counts = pc.fill_null(pc.list_value_length(outer), 0).to_numpy().astype(np.int64)
    inner = outer.flatten()
    lengths = pc.list_value_length(inner).to_numpy().astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Tokenized(
        ids=inner.flatten().to_numpy().astype(np.int32),
        offsets=offsets,
        window_doc=np.repeat(np.arange(len(counts)), counts),
        tokens=tokens.astype(np.int64),
    )


@functools.lru_cache(maxsize=2)
def _document_tokenizer(model_path: str, options: ScoringParams) -> DocumentTokenizer:
    from transformers import AutoTokenizer

    return DocumentTokenizer(AutoTokenizer.from_pretrained(model_path), options)


def _read_shards(
    batch: dict[str, np.ndarray],
    fields: dict[str, str],
    on_bad_record: str,
    rows: int,
    payload: tuple[str, Any],
    columns: Callable[[list[str]], tuple[np.ndarray, Any]],
    end_value: Any,
) -> Iterator[Any]:
    """The documents of each shard in ``batch``, ``rows`` at a time, with the token counts and ``payload`` column
    that ``columns`` gives for their texts; then one ``end`` row (``end_value`` as its payload) with its counts."""
    import pyarrow as pa

    schema = _schema(pa.field(*payload))
    for index, source in zip(batch["index"].tolist(), batch["source"].tolist(), strict=True):
        reader = ShardReader(source, fields, on_bad_record)
        info: dict[str, Any]
        try:
            for items in windows_of(reader, rows):
                docs = [document for _, document in items]
                tokens, values = columns([d.text for d in docs])
                yield pa.table(
                    {
                        "index": pa.array([index] * len(docs), pa.int64()),
                        "kind": pa.array(["doc"] * len(docs), pa.string()),
                        "id": pa.array([d.id for d in docs], pa.string()),
                        "language": pa.array([d.language for d in docs], pa.string()),
                        "tokens": pa.array(tokens, pa.int64()),
                        "empty": pa.array([is_empty_text(d.text) for d in docs], pa.bool_()),
                        payload[0]: values,
                        "info": pa.array([""] * len(docs), pa.string()),
                    },
                    schema=schema,
                )
            info = {"dropped": dict(reader.dropped)}
        except (MlfilterError, OSError) as exc:
            info = {"error": str(exc), "seen": reader.seen}
        yield pa.table(
            {
                "index": [index],
                "kind": ["end"],
                "id": [""],
                "language": [None],
                "tokens": [0],
                "empty": [False],
                payload[0]: end_value,
                "info": [json.dumps(info)],
            },
            schema=schema,
        )


def read_and_tokenize(
    batch: dict[str, np.ndarray],
    *,
    model_path: str,
    options: ScoringParams,
    fields: dict[str, str],
    on_bad_record: str,
    rows: int,
) -> Iterator[Any]:
    """Ray Data read step for an encoder: the documents of each shard as token windows, then one ``end`` row with
    its counts."""
    import pyarrow as pa

    tokenizer = _document_tokenizer(model_path, options)

    def windows(texts: list[str]) -> tuple[np.ndarray, Any]:
        tokenized = tokenizer(texts)
        return tokenized.tokens, tokenized_to_arrow(tokenized)

    windows_type = pa.list_(pa.list_(pa.int32()))
    end = pa.array([[]], windows_type)
    yield from _read_shards(batch, fields, on_bad_record, rows, ("windows", windows_type), windows, end)


@functools.lru_cache(maxsize=2)
def _text_scorer(model_path: str) -> TextClassifierScorer:
    return TextClassifierScorer(load_classifier(model_path))


def read_and_score_texts(
    batch: dict[str, np.ndarray], *, model_path: str, fields: dict[str, str], on_bad_record: str, rows: int
) -> Iterator[Any]:
    """Ray Data read step for a non-encoder classifier (fastText, TF-IDF), which needs no GPU: the documents of
    each shard scored where they are read, then one ``end`` row (NaN scores) with its counts."""
    import pyarrow as pa

    scorer = _text_scorer(model_path)
    tasks = len(scorer.task_names)

    def scores(texts: list[str]) -> tuple[np.ndarray, Any]:
        scored = scorer.score(texts)
        return scored.tokens, scores_to_arrow(scored.scores)

    end = scores_to_arrow(np.full((1, tasks), np.nan, np.float32))
    payload = ("scores", pa.list_(pa.float32(), tasks))
    yield from _read_shards(batch, fields, on_bad_record, rows, payload, scores, end)


class ScorerActor:
    """Ray Data actor: holds the model (on its GPU where it has one) and scores batches of token windows."""

    def __init__(self, model_path: str, options: ScoringParams) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        model, tokenizer = load_model(model_path, device, options.dtype)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.runner = ModelRunner(model, pad, options)

    def __call__(self, table: Any) -> Any:

        tokenized = tokenized_from_arrow(table["windows"], table["tokens"].to_numpy())
        scores, labels = self.runner(tokenized)
        table = table.drop_columns(["windows"]).append_column("scores", scores_to_arrow(scores))
        return table if labels is None else table.append_column("labels", scores_to_arrow(labels))


class RayEngine:
    """Score and filter shards on a Ray cluster; use as a context manager."""

    def __init__(self, model_path: str, options: ScoringParams, params: RayParams) -> None:
        self.model_path = model_path
        self.options = options
        self.params = params
        self._cluster = RayCluster(self.params.address, "runtime.filter.engine")

    def __enter__(self) -> RayEngine:
        self._cluster.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cluster.__exit__(*exc)

    def _actors(self) -> tuple[int, int]:
        resources = _ray().cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if self.params.actors:
            return self.params.actors, 1 if gpus else 0
        if gpus:
            return gpus, 1
        return max(1, int(resources.get("CPU", 1) // (2 * self.params.cpus_per_actor))), 0

    def score(
        self,
        jobs: Sequence[ShardJob],
        settings: ShardSettings,
        fingerprints: dict[int, str],
        on_documents: Callable[[int], None] | None = None,
    ) -> Iterator[ShardOutcome]:
        """Score shards through a Ray Data pipeline; outcomes in shard order as shards complete.
        ``on_documents(n)`` is told of every ``n`` further documents scored."""
        if not jobs:
            return
        ray = _ray()
        from ray.data import ActorPoolStrategy, DataContext

        DataContext.get_current().execution_options.preserve_order = True
        dataset = ray.data.from_items(
            [{"index": job.index, "source": job.source} for job in jobs], override_num_blocks=len(jobs)
        )
        read = {"fields": settings.fields, "on_bad_record": settings.on_bad_record, "rows": self.params.batch_size}
        if classifier_kind(self.model_path) != ENCODER:
            log.info("ray engine: %s classifier, scored in the read tasks", classifier_kind(self.model_path))
            fn_kwargs = {"model_path": self.model_path, **read}
            dataset = dataset.map_batches(
                read_and_score_texts, batch_size=1, batch_format="numpy", fn_kwargs=fn_kwargs, num_cpus=1
            )
        else:
            actors, gpus_each = self._actors()
            log.info("ray engine: %d scorer actor(s), %d GPU each", actors, gpus_each)
            fn_kwargs = {"model_path": self.model_path, "options": self.options, **read}
            dataset = dataset.map_batches(
                read_and_tokenize, batch_size=1, batch_format="numpy", fn_kwargs=fn_kwargs, num_cpus=1
            )
            dataset = dataset.map_batches(
                ScorerActor,
                fn_constructor_kwargs={"model_path": self.model_path, "options": self.options},
                batch_size=self.params.batch_size,
                batch_format="pyarrow",
                compute=ActorPoolStrategy(size=actors),
                num_gpus=gpus_each,
                num_cpus=self.params.cpus_per_actor,
            )
        by_index = {job.index: job for job in jobs}
        writer = _DriverWriter(by_index, settings, fingerprints)
        for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            yield from writer.consume(table)
            if on_documents is not None:
                on_documents(table["kind"].to_pylist().count("doc"))

    def apply(
        self,
        jobs: Sequence[ShardJob],
        settings: ShardSettings,
        decisions: dict[int, KeepDecision],
        fingerprints: dict[int, str],
    ) -> Iterator[ShardOutcome]:
        """Write the kept documents of scored shards, one Ray task per shard."""
        ray = _ray()
        remote = ray.remote(num_cpus=1)(apply_shard)
        pending = [remote.remote(job, settings, decisions[job.index], fingerprints[job.index]) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])


class _DriverWriter:
    """Writes the scores arriving at the driver into each shard's attributes file, then its marker."""

    def __init__(self, jobs: dict[int, ShardJob], settings: ShardSettings, fingerprints: dict[int, str]) -> None:
        self.jobs = jobs
        self.settings = settings
        self.fingerprints = fingerprints
        self.current: tuple[int, AttributeWriter, float] | None = None

    def _writer(self, index: int) -> AttributeWriter:
        if self.current is None or self.current[0] != index:
            job = self.jobs[index]
            self.current = (index, AttributeWriter(job, self.settings, self.fingerprints[index]), time.perf_counter())
        return self.current[1]

    def consume(self, table: Any) -> Iterator[ShardOutcome]:
        """Write one batch of scored rows; yield an outcome for each shard it completes."""
        indexes = table["index"].to_numpy()
        kinds = table["kind"].to_pylist()
        scores = np.asarray(table["scores"].combine_chunks().flatten().to_numpy(), dtype=np.float32).reshape(
            len(kinds), -1
        )
        labels = None
        if "labels" in table.column_names:
            flat_labels = table["labels"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
            labels = np.asarray(flat_labels, dtype=np.float32).reshape(len(kinds), -1)
        tokens = table["tokens"].to_numpy()
        empty = table["empty"].to_numpy(zero_copy_only=False)
        ids = table["id"].to_pylist()
        languages = table["language"].to_pylist()
        start = 0
        while start < len(kinds):
            stop = start
            while stop < len(kinds) and indexes[stop] == indexes[start] and kinds[stop] == "doc":
                stop += 1
            writer = self._writer(int(indexes[start]))
            if stop > start:
                writer.add(
                    ids[start:stop],
                    languages[start:stop],
                    scores[start:stop],
                    tokens[start:stop],
                    empty[start:stop],
                    None if labels is None else labels[start:stop],
                )
                start = stop
                continue
            info = json.loads(table["info"][start].as_py())
            yield self._end(int(indexes[start]), writer, info)
            start += 1

    def _end(self, index: int, writer: AttributeWriter, info: dict[str, Any]) -> ShardOutcome:
        assert self.current is not None
        seconds = time.perf_counter() - self.current[2]
        self.current = None
        if "error" in info:
            writer.abort()
            return ShardOutcome(index, "score", info["error"], info.get("seen", 0), 0, seconds)
        return writer.finish(Counter(info["dropped"]), seconds)
