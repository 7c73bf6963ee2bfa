"""The annotate stage against a real vLLM server: generate with n = 3, logprobs with the reply prefix, json mode,
an unknown model, kill -9 + rerun.

Each test runs the stage script as DVC runs it (``stages/annotate.py`` in its own process, the server's URL in
``OPENAI_BASE_URL``) on 24 short real documents, and checks what the server itself counted on ``/metrics``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlfilter.annotation.cache import RequestCache
from mlfilter.annotation.params import AnnotatorParams
from mlfilter.annotation.runner import Annotator
from mlfilter.documents import read_documents
from mlfilter.params import TaskParams, convert
from tests.annotation.conftest import DOCUMENTS, EDUCATIONAL, read_output
from tests.realserver.conftest import ROOT, RealServer

#: One xdist worker runs these tests, so the session starts one vLLM server (make test runs with -n).
pytestmark = [pytest.mark.realserver, pytest.mark.xdist_group("vllm")]

#: 18 English, 3 German and 3 Spanish documents of the annotate tests' real set.
PER_LANGUAGE = {"en": 18, "deu": 3, "spa": 3}
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSONL file of 24 real documents in three languages."""
    taken: dict[str, int] = dict.fromkeys(PER_LANGUAGE, 0)
    lines = []
    for line in DOCUMENTS.read_text(encoding="utf-8").splitlines():
        language = json.loads(line)["language"]
        if taken[language] < PER_LANGUAGE[language]:
            taken[language] += 1
            lines.append(line)
    path = tmp_path_factory.mktemp("documents") / "documents.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def annotator_params(server: RealServer, **overrides: Any) -> dict[str, Any]:
    """An openai-backend annotator for the served model: short documents, patient timeouts."""
    return {
        "backend": "openai",
        "model": server.model,
        "max_document_tokens": 160,
        "concurrency": 8,
        "timeout_s": 120.0,
        "max_retries": 2,
        # The tiny model's share of invalid replies is what these tests measure themselves; the stage's
        # failure budget would stop the run before they can.
        "max_invalid_fraction": 1.0,
        **overrides,
    }


class Stage:
    """The annotate stage of one annotator in a folder of its own, with its own request cache."""

    def __init__(self, folder: Path, server: RealServer, documents: Path, params: dict[str, Any]) -> None:
        self.folder, self.server, self.documents, self.params = folder, server, documents, params
        self.cache = folder / "cache.sqlite"
        task = {"name": EDUCATIONAL.name, "prompt": EDUCATIONAL.prompt, "num_targets": 6, "threshold": 3}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "params.yaml").write_text(
            yaml.safe_dump({"tasks": [task], "annotate": {"annotators": {"real": params}}}), encoding="utf-8"
        )

    def start(self) -> subprocess.Popen[bytes]:
        """The stage script in its own process, pointed at the server by environment variables."""
        env = {
            **os.environ,
            "OPENAI_BASE_URL": self.server.url,
            "MLFILTER_CACHE": str(self.cache),
            "MLFILTER_PROGRESS": "0",
            "HF_HUB_OFFLINE": "1",
        }
        command = [sys.executable, str(ROOT / "stages" / "annotate.py"), "--annotator", "real"]
        command += ["--input", str(self.documents), "--output", "out", "--report", "report.json"]
        command += ["--params", "params.yaml"]
        return subprocess.Popen(command, cwd=self.folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def run(self) -> dict[str, Any]:
        """Run to the end (it must succeed) and return the report."""
        process = self.start()
        _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
        assert process.returncode == 0, stderr.decode(errors="replace")[-4000:]
        return json.loads((self.folder / "report.json").read_text(encoding="utf-8"))

    def records(self) -> list[dict[str, Any]]:
        return read_output(self.folder / "out")

    def request_keys(self) -> list[str]:
        """The cache keys of every request the run plans, computed by the project's own annotator."""
        params = convert(self.params, AnnotatorParams, "real")
        annotator = Annotator("real", params, (TaskParams(EDUCATIONAL.name, EDUCATIONAL.prompt, 6, 3),))
        return [r.key for _, doc in read_documents([str(self.documents)]) for r in annotator.plan(doc).requests()]


def wait_idle(server: RealServer, timeout_s: float = 120.0) -> None:
    """Until the server has no request running or waiting (aborted requests of a killed client included)."""
    deadline = time.monotonic() + timeout_s
    while server.metric("vllm:num_requests_running") + server.metric("vllm:num_requests_waiting") > 0:
        assert time.monotonic() < deadline, "the server still has requests in flight"
        time.sleep(0.5)


def test_chat_generate_n3(vllm_server: RealServer, documents: Path, tmp_path: Path) -> None:
    """Three sampled replies per document through the chat API, each its own request; a rerun sends nothing."""
    params = annotator_params(
        vllm_server,
        n=3,
        force_reply_prefix=True,
        sampling={"temperature": 0.7, "top_p": 0.95, "max_new_tokens": 8},
        extra_body={"stop": [" ", "\n"]},
    )
    stage = Stage(tmp_path, vllm_server, documents, params)
    planned = len(stage.request_keys())
    assert planned == 24 * 3

    before = vllm_server.finished_requests()
    report = stage.run()
    assert vllm_server.finished_requests() - before == planned
    assert report["requests"]["sent"] == planned
    assert report["requests"]["failed"] == 0

    records = stage.records()
    assert len(records) == 24
    for record in records:
        assert len(record["scores"]["educational"]) == 3
        assert len(record["status"]["educational"]) == 3
        assert all(isinstance(reply, str) for reply in record["replies"]["educational"])
    statuses = [s for r in records for s in r["status"]["educational"]]
    ok = [score for r in records for score in r["scores"]["educational"] if score is not None]
    # The tiny model sampled at 0.7 often writes "100" or "3.5" after the prefix (out of range): about 40 % are
    # valid scores here; a quarter is far from what a broken request path would give (none).
    assert statuses.count("ok") == len(ok) >= 0.25 * planned, report["generations"]
    assert not any(s.startswith("request_failed") for s in statuses)
    assert all(0 <= score <= 5 for score in ok)
    # Sampling at temperature 0.7 from a real model: the three replies of a document are not all the same.
    assert sum(len(set(r["replies"]["educational"])) > 1 for r in records) >= 6

    before = vllm_server.finished_requests()
    output = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    again = stage.run()
    assert vllm_server.finished_requests() == before
    assert again["requests"]["sent"] == 0 and again["requests"]["cache_hits"] == planned
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == output


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_logprobs_with_reply_prefix(
    vllm_server: RealServer, model_folder: Path, documents: Path, tmp_path: Path, api: str
) -> None:
    """vLLM continues the forced "Educational score: " prefix: the label digits hold most of the probability."""
    extra = {"tokenizer": str(model_folder)} if api == "completions" else {}
    params = annotator_params(vllm_server, score_mode="logprobs", api=api, top_logprobs=20, **extra)
    stage = Stage(tmp_path, vllm_server, documents, params)

    before = vllm_server.finished_requests()
    report = stage.run()
    assert vllm_server.finished_requests() - before == 24
    assert report["requests"]["sent"] == 24

    records = stage.records()
    masses = [r["label_mass"]["educational"][0] for r in records]
    statuses = [r["status"]["educational"][0] for r in records]
    # A score counts only when the labels hold most of the probability and the generated token is one of them.
    assert set(statuses) <= {"ok", "low_label_mass", "no_label_token"}, report["generations"]
    judged_by_mass = [(m, s) for m, s in zip(masses, statuses, strict=True) if s != "no_label_token"]
    assert all((mass >= 0.5) == (status == "ok") for mass, status in judged_by_mass)
    assert statuses.count("ok") >= 0.75 * len(records), (masses, report["generations"])
    for record in records:
        if record["status"]["educational"] != ["ok"]:
            assert record["scores"]["educational"] == [None]
            continue
        distribution = record["distribution"]["educational"][0]
        assert len(distribution) == 6
        assert sum(distribution) == pytest.approx(1.0, abs=1e-5)  # rounded to 6 decimals
        assert 0 <= record["scores"]["educational"][0] <= 5


def test_json_mode_replies_follow_the_schema(vllm_server: RealServer, documents: Path, tmp_path: Path) -> None:
    """score_mode json: vLLM constrains every reply to ``{"score": <label>}``, so every generation is valid."""
    params = annotator_params(
        vllm_server,
        score_mode="json",
        force_reply_prefix=False,
        sampling={"temperature": 0.0, "max_new_tokens": 24},
        max_invalid_fraction=0.0,  # the schema leaves the model no way to be invalid: the budget holds at 0
    )
    stage = Stage(tmp_path, vllm_server, documents, params)
    before = vllm_server.finished_requests()
    report = stage.run()
    assert vllm_server.finished_requests() - before == 24
    records = stage.records()
    assert len(records) == 24
    for record in records:
        assert record["status"]["educational"] == ["ok"], record
        reply = json.loads(record["replies"]["educational"][0])
        assert set(reply) == {"score"} and reply["score"] in range(6), reply
        assert record["scores"]["educational"] == [reply["score"]]
    assert report["requests"]["failed"] == 0


def test_unknown_model_fails_with_the_servers_reason(vllm_server: RealServer, documents: Path, tmp_path: Path) -> None:
    """A model name the server does not serve: the stage stops with the server's own words, nothing is cached."""
    stage = Stage(tmp_path, vllm_server, documents, annotator_params(vllm_server, model="no-such-model"))
    process = stage.start()
    _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    message = stderr.decode(errors="replace")
    assert process.returncode != 0
    assert "404" in message and "no-such-model" in message and "does not exist" in message, message
    assert not stage.cache.exists() or not RequestCache(stage.cache).contains_many(stage.request_keys())


def test_kill_9_then_rerun_sends_no_finished_request(vllm_server: RealServer, documents: Path, tmp_path: Path) -> None:
    """kill -9 of the stage mid-run; the rerun sends exactly the requests the cache lacks, as the server counts."""
    params = annotator_params(
        vllm_server,
        n=3,
        concurrency=4,
        force_reply_prefix=True,
        sampling={"temperature": 0.7, "top_p": 0.95, "max_new_tokens": 8},
        extra_body={"stop": [" ", "\n"]},
    )
    stage = Stage(tmp_path, vllm_server, documents, params)
    keys = stage.request_keys()

    wait_idle(vllm_server)
    before = vllm_server.finished_requests()
    process = stage.start()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while vllm_server.finished_requests() - before < len(keys) // 3:
        assert process.poll() is None, process.stderr.read().decode(errors="replace") if process.stderr else ""
        assert time.monotonic() < deadline, "the server finished too few requests"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_idle(vllm_server)

    finished = RequestCache(stage.cache).contains_many(keys)
    assert 0 < len(finished) < len(keys), "the kill should land in the middle of the run"

    before = vllm_server.finished_requests()
    report = stage.run()
    assert vllm_server.finished_requests() - before == len(keys) - len(finished)
    assert report["requests"]["cache_hits"] == len(finished)
    assert report["requests"]["sent"] == len(keys) - len(finished)
    records = stage.records()
    assert len(records) == 24
    assert all(len(r["status"]["educational"]) == 3 for r in records)
    assert not any(s.startswith("request_failed") for r in records for s in r["status"]["educational"])
