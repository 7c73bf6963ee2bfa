"""The ``local`` engine: shards spread over one process per GPU, or over a pool of CPU workers.

With a single worker everything runs in this process. The model is loaded once per worker, and only
when the worker first has a shard to score (filtering already-scored shards needs no model).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from dataclasses import replace
from typing import Any

import torch

from mlfilter.filtering.keep_rules import KeepDecision
from mlfilter.filtering.params import ScoringParams
from mlfilter.filtering.shards import ShardJob, ShardOutcome, ShardSettings, apply_shard, score_shard
from mlfilter.filtering.text_scorer import load_scorer
from mlfilter.filtering.tokenize import default_workers

log = logging.getLogger("mlfilter.filter")


def plan_devices(device: str, workers: int) -> list[str]:
    """The device of each worker: one per visible GPU (or ``workers`` spread over them), else CPU workers."""
    gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    if gpus:
        return [f"cuda:{i % gpus}" for i in range(workers or gpus)]
    return [device if device != "auto" else "cpu"] * (workers or 1)


class _Worker:
    """A worker's lazily loaded scorer (one per process)."""

    def __init__(self, model_path: str, options: ScoringParams) -> None:
        self.model_path = model_path
        self.options = options
        self._scorer: Any = None

    @property
    def scorer(self) -> Any:
        """The encoder :class:`~mlfilter.filtering.engine.Scorer` or text-classifier scorer of the model."""
        if self._scorer is None:
            self._scorer = load_scorer(self.model_path, self.options)
        return self._scorer


_WORKER: _Worker | None = None
_SCORED: Any = None  # documents scored by all workers since the driver last looked (a shared integer)


def _init_worker(devices: Any, model_path: str, options: ScoringParams, threads: int, scored: Any) -> None:
    global _WORKER, _SCORED
    device = devices.get()
    if device == "cpu":
        torch.set_num_threads(threads)
    _WORKER = _Worker(model_path, replace(options, device=device))
    _SCORED = scored


def _count_scored(documents: int) -> None:
    with _SCORED.get_lock():
        _SCORED.value += documents


def _score_in_worker(job: ShardJob, settings: ShardSettings, fingerprint: str) -> ShardOutcome:
    assert _WORKER is not None
    return score_shard(job, settings, fingerprint, _WORKER.scorer, _count_scored)


class LocalEngine:
    """Score and filter shards on this machine; use as a context manager."""

    def __init__(self, model_path: str, options: ScoringParams, workers: int = 0) -> None:
        self.model_path = model_path
        self.devices = plan_devices(options.device, workers)
        gpu_workers = sum(device.startswith("cuda") for device in self.devices)
        if gpu_workers and not options.tokenize_workers:
            # The cores are shared by the tokenizer pools of all GPU workers.
            options = replace(options, tokenize_workers=max(1, default_workers("cuda") // gpu_workers))
        self.options = options
        self._pool: ProcessPoolExecutor | None = None
        self._local: _Worker | None = None
        self._scored: Any = None

    def __enter__(self) -> LocalEngine:
        if len(self.devices) == 1:
            self._local = _Worker(self.model_path, replace(self.options, device=self.devices[0]))
            return self
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        for device in self.devices:
            queue.put(device)
        threads = max(1, (os.cpu_count() or 1) // len(self.devices))
        self._scored = context.Value("q", 0)
        self._pool = ProcessPoolExecutor(
            max_workers=len(self.devices),
            mp_context=context,
            initializer=_init_worker,
            initargs=(queue, self.model_path, self.options, threads, self._scored),
        )
        log.info("local engine: %d worker processes on %s", len(self.devices), ", ".join(sorted(set(self.devices))))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._local is not None and hasattr(self._local._scorer, "close"):
            self._local._scorer.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def score(
        self,
        jobs: Sequence[ShardJob],
        settings: ShardSettings,
        fingerprints: dict[int, str],
        on_documents: Callable[[int], None] | None = None,
    ) -> Iterator[ShardOutcome]:
        """Score shards into their attribute files; outcomes in completion order. ``on_documents(n)`` is told
        of every ``n`` further documents scored (from worker processes: about once a second)."""
        if self._local is not None:
            for job in jobs:
                yield score_shard(job, settings, fingerprints[job.index], self._local.scorer, on_documents)
            return
        assert self._pool is not None
        futures = [self._pool.submit(_score_in_worker, job, settings, fingerprints[job.index]) for job in jobs]
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, timeout=1.0, return_when=FIRST_COMPLETED)
            with self._scored.get_lock():
                scored, self._scored.value = self._scored.value, 0
            if on_documents is not None and scored:
                on_documents(scored)
            for future in done:
                yield future.result()

    def apply(
        self,
        jobs: Sequence[ShardJob],
        settings: ShardSettings,
        decisions: dict[int, KeepDecision],
        fingerprints: dict[int, str],
    ) -> Iterator[ShardOutcome]:
        """Write the kept documents of scored shards; outcomes in completion order."""
        if self._pool is None:
            for job in jobs:
                yield apply_shard(job, settings, decisions[job.index], fingerprints[job.index])
            return
        yield from _completed(
            [
                self._pool.submit(apply_shard, job, settings, decisions[job.index], fingerprints[job.index])
                for job in jobs
            ]
        )


def _completed(futures: list[Future[ShardOutcome]]) -> Iterator[ShardOutcome]:
    for future in as_completed(futures):
        yield future.result()
