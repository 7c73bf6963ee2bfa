"""The request cache: every finished LLM request, keyed by a hash of what was asked, in SQLite (WAL).

It lives outside DVC outputs (default ``.mlfilter/cache/requests.sqlite``) and is shared by reruns,
annotators and ``dvc exp run`` experiments, so nothing is ever asked twice.

**What "done" means.** A request counts as done — in progress figures, in the report and in the
output — only once the transaction holding its result has committed. Commits are batched (every
``interval`` seconds or ``max_batch`` results, in one writer thread) and use ``synchronous=FULL``, so a
committed result survives ``kill -9`` and power loss alike. A kill loses at most the results of the
batch not yet committed; those requests were never counted as done and are sent again on rerun.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from mlfilter.annotation.params import CACHE_ENV, DEFAULT_CACHE
from mlfilter.errors import MlfilterError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID
"""
_CHUNK = 500


def cache_path(configured: str | None, cwd: str | os.PathLike[str] | None = None) -> Path:
    """The cache file: ``$MLFILTER_CACHE`` if set, else the configured path, else the default.

    A relative path is taken from the project root. ``dvc exp run --temp`` and queued experiments run
    in a copy of the project under ``<root>/.dvc/tmp/exps/``; their cache is the project's own, so
    experiments share finished requests with the workspace and with each other.
    """
    path = Path(os.environ.get(CACHE_ENV) or configured or DEFAULT_CACHE)
    if path.is_absolute():
        return path
    here = Path(cwd or os.getcwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i]) / path
    return here / path


class RequestCache:
    """Results by request key. Use one instance per thread; WAL lets readers and a writer overlap."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=120.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise MlfilterError(f"{self.path}: cannot open the request cache: {exc}") from None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The cached results among ``keys``."""
        found: dict[str, dict[str, Any]] = {}
        keys = list(keys)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, value in self._db.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk):
                found[key] = orjson.loads(value)
        return found

    def contains_many(self, keys: Iterable[str]) -> set[str]:
        """The keys among ``keys`` that have a result."""
        present: set[str] = set()
        keys = list(keys)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            present.update(row[0] for row in self._db.execute(f"SELECT key FROM results WHERE key IN ({marks})", chunk))
        return present

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store serialized results in one transaction, committed when this returns."""
        now = time.time()
        rows = [(key, value, now) for key, value in items]
        if not rows:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT OR REPLACE INTO results (key, value, created) VALUES (?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


class BatchedCommitter:
    """Commits results in batches from one writer thread while the event loop keeps sending.

    ``add`` queues a result; ``on_commit(keys)`` runs in the event loop after the batch holding them
    has committed — that is when they are done.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_commit: Callable[[list[str]], None],
        *,
        interval: float = 0.05,
        max_batch: int = 1024,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlfilter-cache")
        self._cache = self._executor.submit(RequestCache, path).result()
        self._on_commit = on_commit
        self._interval = interval
        self._max_batch = max_batch
        self._pending: list[tuple[str, bytes]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self.commits = 0
        self.error: BaseException | None = None

    def add(self, key: str, value: bytes) -> None:
        """Queue one serialized result for the next commit; raises once a commit has failed."""
        if self.error is not None:
            raise MlfilterError(f"{self._cache.path}: writing to the request cache failed: {self.error}")
        self._pending.append((key, value))
        if len(self._pending) >= self._max_batch:
            self._wake.set()

    async def run(self) -> None:
        """Commit pending results until :meth:`close`, then commit the rest."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._closed:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                try:
                    await loop.run_in_executor(self._executor, self._cache.put_many, batch)
                except Exception as exc:
                    self.error = exc
                    raise
                self.commits += 1
                self._on_commit([key for key, _ in batch])
            if self._closed and not self._pending:
                break

    def close(self) -> None:
        """Ask :meth:`run` to commit what is pending and return."""
        self._closed = True
        self._wake.set()

    def shutdown(self) -> None:
        """Close the writer connection and thread (after :meth:`run` returned)."""
        self._executor.submit(self._cache.close).result()
        self._executor.shutdown()
