"""The request cache: results survive kill -9 once committed, and count as done only after commit."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from mlfilter.annotation.cache import BatchedCommitter, RequestCache, cache_path


def test_put_and_get(cache_file: Path) -> None:
    cache = RequestCache(cache_file)
    cache.put_many([("a", b'{"text": "x"}'), ("b", b'{"text": "y"}')])
    assert cache.get_many(["a", "c"]) == {"a": {"text": "x"}}
    assert cache.contains_many(["a", "b", "c"]) == {"a", "b"}
    assert len(cache) == 2
    cache.close()


def test_lookups_of_many_keys_are_chunked(cache_file: Path) -> None:
    cache = RequestCache(cache_file)
    cache.put_many((f"k{i}", b"{}") for i in range(2500))
    assert len(cache.contains_many(f"k{i}" for i in range(0, 5000, 2))) == 1250
    cache.close()


def test_the_cache_uses_wal(cache_file: Path) -> None:
    RequestCache(cache_file).close()
    with sqlite3.connect(cache_file) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_committed_result_survives_kill_9(cache_file: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from mlfilter.annotation.cache import RequestCache\n"
        "cache = RequestCache(sys.argv[1])\n"
        "cache.put_many([('done', b'{\"text\": \"kept\"}')])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(cache_file)], check=False)
    assert result.returncode == -9
    assert RequestCache(cache_file).get_many(["done"]) == {"done": {"text": "kept"}}


def test_results_count_as_done_only_once_committed(cache_file: Path) -> None:
    seen_committed: list[bool] = []
    observer = RequestCache(cache_file)

    def on_commit(keys: list[str]) -> None:
        seen_committed.append(observer.contains_many(keys) == set(keys))

    async def scenario() -> None:
        committer = BatchedCommitter(cache_file, on_commit, interval=0.01, max_batch=3)
        task = asyncio.create_task(committer.run())
        for i in range(10):
            committer.add(f"k{i}", b"{}")
            await asyncio.sleep(0.002)
        committer.close()
        await task
        committer.shutdown()

    asyncio.run(scenario())
    assert seen_committed and all(seen_committed)
    assert len(observer) == 10


def test_cache_path_from_params_env_and_experiments(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFILTER_CACHE", raising=False)
    assert cache_path("x/y.sqlite", tmp_path) == tmp_path.resolve() / "x/y.sqlite"
    experiment = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    experiment.mkdir(parents=True)
    assert cache_path("x/y.sqlite", experiment) == tmp_path.resolve() / "x/y.sqlite"
    monkeypatch.setenv("MLFILTER_CACHE", str(tmp_path / "env.sqlite"))
    assert cache_path("x/y.sqlite", experiment) == tmp_path / "env.sqlite"
