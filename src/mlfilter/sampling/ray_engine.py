"""The ``ray`` engine of the sample stage: one Ray task per input file, the same work files as ``local``.

Each task runs :func:`~mlfilter.sampling.worker.process_file` — extraction, language identification,
filters and the per-document sampling keys — and writes the file's work files (candidates, keys,
summary last) under ``work_dir``, which must be on storage the driver and every worker share (one
machine, or a shared filesystem). Selection (the seeded per-language bottom-k) and writing run on
the driver from those work files, with the local engine's code, so the output is byte-identical to
``engine: local`` for the same inputs and seed. A file whose summary exists is done: a rerun after a
crash or a ``kill -9`` of the driver submits only the others.

The driver keeps at most ``max_in_flight`` tasks submitted (default: twice the cluster's CPUs) and
takes new ones from the task iterator as others finish, so a listing of tens of thousands of files
never turns into as many Ray objects at once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mlfilter.errors import MlfilterError
from mlfilter.logs import progress_bar
from mlfilter.ray_cluster import RayCluster, import_ray
from mlfilter.sampling.worker import FileSummary, FileTask, process_file

log = logging.getLogger("mlfilter.sample")


def _ray() -> Any:
    return import_ray("runtime.sample.engine")


def _process_remote(task: FileTask) -> tuple[FileSummary, str]:
    """Run in a Ray worker: process one file; returns its summary and the worker's ``host:pid``."""
    return process_file(task), f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerStats:
    """What one Ray worker process did: files, records read, documents extracted, seconds busy."""

    files: int = 0
    records: int = 0
    documents: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        """Counts plus ``documents_per_second`` of busy time (``None``-free: 0 when it never was busy)."""
        rate = self.documents / self.seconds if self.seconds > 0 else 0.0
        return {
            "files": self.files,
            "records": self.records,
            "documents": self.documents,
            "seconds": round(self.seconds, 3),
            "documents_per_second": round(rate, 3),
        }


@dataclass
class RayRun:
    """The summaries of a Ray run (by task index) and per-worker statistics of the files it processed."""

    summaries: dict[int, FileSummary] = field(default_factory=dict)
    workers: dict[str, WorkerStats] = field(default_factory=lambda: defaultdict(WorkerStats))

    def workers_report(self) -> dict[str, dict[str, float | int]]:
        """Per worker (``host:pid``), sorted."""
        return {name: stats.as_dict() for name, stats in sorted(self.workers.items())}


class RaySampleEngine:
    """Connects to (or starts) a Ray cluster and processes the sample's files as Ray tasks.

    ``address``: ``None`` joins the cluster named by ``RAY_ADDRESS`` or starts a local one;
    ``cpus_per_task``: CPUs Ray reserves per file; ``max_in_flight``: tasks submitted at once (0: 2 × CPUs).
    """

    def __init__(self, address: str | None, cpus_per_task: float = 1.0, max_in_flight: int = 0) -> None:
        self.address = address
        self.cpus_per_task = cpus_per_task
        self.max_in_flight = max_in_flight
        self._cluster = RayCluster(self.address, "runtime.sample.engine")

    def __enter__(self) -> RaySampleEngine:
        self._cluster.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cluster.__exit__(*exc)

    def _window(self) -> int:
        if self.max_in_flight:
            return self.max_in_flight
        cpus = int(_ray().cluster_resources().get("CPU", 1))
        return max(2, 2 * int(cpus / self.cpus_per_task))

    def run(self, tasks: Iterable[FileTask], *, stop_on_error: bool) -> RayRun:
        """Process every task not done by an earlier run; summaries of done ones are loaded, not redone.

        Raises:
            MlfilterError: with ``stop_on_error``, the first file that fails, naming it (finished files
                keep their work files for the next run).
        """
        ray = _ray()
        remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=2)(_process_remote)
        result = RayRun()
        window = self._window()
        in_flight: dict[Any, FileTask] = {}
        started = time.perf_counter()
        pending = list(_pending(tasks, result))
        bar = progress_bar(desc="sample: input files", total=len(pending), unit="file")
        try:
            for task in pending:
                in_flight[remote.remote(task)] = task
                if len(in_flight) >= window:
                    bar.update(self._collect(ray, in_flight, result, stop_on_error))
            while in_flight:
                bar.update(self._collect(ray, in_flight, result, stop_on_error))
        finally:
            bar.close()
            for ref in in_flight:
                ray.cancel(ref, force=True)
        reused = sum(1 for s in result.summaries.values() if s.reused)
        log.info(
            "sample (ray): %d file(s) processed, %d reused, on %d worker(s) in %.1f s",
            len(result.summaries) - reused,
            reused,
            len(result.workers),
            time.perf_counter() - started,
        )
        return result

    @staticmethod
    def _collect(ray: Any, in_flight: dict[Any, FileTask], result: RayRun, stop_on_error: bool) -> int:
        """Wait for a task to finish and record its summary; returns how many finished (one)."""
        done, _ = ray.wait(list(in_flight), num_returns=1)
        for ref in done:
            task = in_flight.pop(ref)
            summary, worker = ray.get(ref)
            result.summaries[task.index] = summary
            stats = result.workers[worker]
            stats.files += 1
            stats.records += summary.records
            stats.documents += summary.extracted
            stats.seconds += summary.seconds
            if summary.error is not None:
                log.warning("%s (%s)", summary.error["message"], summary.error["reason"])
                if stop_on_error:
                    raise MlfilterError(
                        f"{summary.error['message']} — set sample.on_error: skip to count such files and go on"
                    )
        return len(done)


def _pending(tasks: Iterable[FileTask], result: RayRun) -> Iterator[FileTask]:
    """The tasks without a finished summary; the others' summaries go straight into ``result``."""
    for task in tasks:
        summary = task.load_summary()
        if summary is None:
            yield task
        else:
            result.summaries[task.index] = summary
