"""kill -9 at random moments, then a rerun: nothing finished is sent again, the output is the same."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mlfilter.annotation.cache import RequestCache
from mlfilter.annotation.params import AnnotatorParams
from mlfilter.annotation.runner import Annotator
from mlfilter.documents import read_documents
from mlfilter.params import convert
from tests.annotation.conftest import ADULT, DOCUMENTS, EDUCATIONAL, ROOT, output_bytes
from tests.openai_server import FakeOpenAIServer, body_digest

ANNOTATOR = {
    "backend": "openai",
    "model": "fake-model",
    "n": 2,
    "sampling": {"temperature": 0.7, "seed": 11},
    "concurrency": 4,
    "max_document_tokens": 200,
    "timeout_s": 5.0,
    "backoff_initial_s": 0.01,
}
KILLS = 7


def write_params(folder: Path) -> Path:
    params = {
        "tasks": [
            {"name": t.name, "prompt": t.prompt, "num_targets": t.num_targets, "threshold": t.threshold}
            for t in (EDUCATIONAL, ADULT)
        ],
        "annotate": {"annotators": {"fake": ANNOTATOR}},
    }
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def start(folder: Path, server: FakeOpenAIServer, cache: Path) -> subprocess.Popen:
    """The annotate stage script as DVC runs it, in its own process."""
    env = {**os.environ, "OPENAI_BASE_URL": server.url, "MLFILTER_CACHE": str(cache), "MLFILTER_PROGRESS": "0"}
    command = [
        sys.executable,
        str(ROOT / "stages" / "annotate.py"),
        "--annotator",
        "fake",
        "--input",
        str(DOCUMENTS),
        "--output",
        "out",
        "--report",
        "report.json",
        "--params",
        str(write_params(folder)),
    ]
    return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()


def test_kill_9_then_rerun(tmp_path: Path) -> None:
    annotator = Annotator("fake", convert(ANNOTATOR, AnnotatorParams, "fake"), (EDUCATIONAL, ADULT))
    digest_of = {
        r.key: body_digest(r.payload)
        for _, doc in read_documents([str(DOCUMENTS)])
        for r in annotator.plan(doc).requests()
    }
    assert len(digest_of) == 72 * 2 * 2

    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    reference.mkdir()
    resumed.mkdir()
    with FakeOpenAIServer(latency=0.03) as server:
        finish(start(reference, server, reference / "cache.sqlite"))

    rng = random.Random(20240611)
    cache = resumed / "cache.sqlite"
    partial_kills = 0
    with FakeOpenAIServer(latency=0.03) as server:
        finished: set[str] = set()
        for kill in range(KILLS):
            server.reset_counts()
            process = start(resumed, server, cache)
            remaining = len(digest_of) - len(finished)
            # Kill a random few milliseconds after the server has seen a random share (up to a third) of
            # what is left; the last time once it has seen all of it, around the last commits and the
            # writing of the output.
            target = remaining if kill == KILLS - 1 else rng.randint(1, max(1, remaining // 3))
            deadline = time.monotonic() + 60
            while server.request_count < target and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.08))
            process.send_signal(signal.SIGKILL)
            process.wait()
            resent = {digest_of[k] for k in finished} & set(server.counts())
            assert not resent, "a finished request was sent again"
            finished = RequestCache(cache).contains_many(digest_of) if cache.exists() else set()
            partial_kills += 0 < len(finished) < len(digest_of)
        server.reset_counts()
        finish(start(resumed, server, cache))
        assert not {digest_of[k] for k in finished} & set(server.counts())
    assert partial_kills >= 4, "the kills should land in the middle of the run"
    assert output_bytes(resumed / "out") == output_bytes(reference / "out")
