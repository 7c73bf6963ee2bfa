"""The openai_batch backend against a real local fake of /v1/files and /v1/batches: faults, kills, reruns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from mlfilter.annotation.backends.base import PreparedRequest
from mlfilter.annotation.backends.openai_batch import split_requests, state_folder
from mlfilter.annotation.runner import annotate
from mlfilter.annotation.statuses import OK
from mlfilter.errors import MlfilterError
from tests.annotation.conftest import ADULT, DOCUMENTS, EDUCATIONAL, ROOT, fast_params, output_bytes, read_output
from tests.annotation.openai_batch_server import FakeBatchServer

#: 72 documents × 2 tasks: 144 requests, in files of at most 40.
REQUESTS = 144
BATCH = {"backend": "openai_batch", "poll_interval_s": 0.01, "batch_max_requests": 40}


def run(tmp_path: Path, cache_file: Path, name: str = "a", **params: Any) -> tuple[list[dict[str, Any]], dict]:
    out = tmp_path / "out" / name
    report = annotate(
        name,
        fast_params(**params),
        (EDUCATIONAL, ADULT),
        [str(DOCUMENTS)],
        out,
        tmp_path / f"{name}.json",
        cache=str(cache_file),
        env_file=None,
    )
    return read_output(out), report


def statuses(records: list[dict[str, Any]]) -> list[str]:
    return [s for r in records for task in ("educational", "adult") for s in r["status"][task]]


def test_expired_batch_and_error_file_end_annotated_and_a_live_rerun_sends_nothing(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeBatchServer(expire_batches=1, expire_done=0.5, error_rate=0.2, error_status=500) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        records, report = run(tmp_path, cache_file, **BATCH)
        assert server.calls["upload"] == server.calls["create"] >= 5, "4 first-round files, then the leftovers"
        errored = len(server.errored)
        assert server.request_count == 0, "nothing went to the live endpoint"
        assert len(records) == 72 and set(statuses(records)) == {OK}
        assert report["batches"]["status"]["expired"] == 1 and report["batches"]["rounds"] >= 2
        assert report["requests"]["failed"] == 0
        retries = report["requests"]["retries"]
        assert retries["http_500"] == errored > 0
        assert retries["batch_expired"] > 0
        assert report["requests"]["sent"] == REQUESTS + retries["http_500"] + retries["batch_expired"]
        assert max(server.batch_lines.values()) == 2 and len(server.batch_lines) == REQUESTS
        assert not list(state_folder(cache_file, "a").glob("requests-*.jsonl")), "request files of done jobs go"

        live_records, live_report = run(tmp_path, cache_file, name="a", backend="openai")
        assert server.request_count == 0, "a live rerun finds every batch result in the cache"
        assert live_report["requests"]["cache_hits"] == REQUESTS and live_report["requests"]["sent"] == 0
    assert live_records == records


def test_a_batch_that_expired_with_nothing_done_is_run_again(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second round's request file equals the first: the upload is reused, the expired batch is not."""
    with FakeBatchServer(expire_batches=1, expire_done=0.0) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        records, report = run(tmp_path, cache_file, **{**BATCH, "batch_max_requests": 50_000})
        assert server.calls["upload"] == 1 and len(server.batches) == 2
        assert [b["status"] for b in server.batches.values()] == ["expired", "completed"]
    assert set(statuses(records)) == {OK} and report["requests"]["retries"] == {"batch_expired": REQUESTS}


def test_batch_replies_equal_live_replies(tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeBatchServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        run(tmp_path, tmp_path / "live.sqlite", name="live", backend="openai")
        assert server.request_count == REQUESTS
        run(tmp_path, cache_file, name="batch", **BATCH)
    live = [{**r, "annotator": None} for r in read_output(tmp_path / "out" / "live")]
    batch = [{**r, "annotator": None} for r in read_output(tmp_path / "out" / "batch")]
    assert batch == live


def test_requests_that_fail_for_good_are_counted_under_their_status(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeBatchServer(error_rate=0.1, error_status=400, error_once=False) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        records, report = run(tmp_path, cache_file, max_invalid_fraction=1.0, **BATCH)
        failed = len(server.errored)
        with pytest.raises(MlfilterError, match="max_invalid_fraction"):
            run(tmp_path, cache_file, name="b", **BATCH)
        assert server.batch_lines.total() == REQUESTS + failed, "a rerun sends only the failed requests"
    found = [s for s in statuses(records) if s != OK]
    assert len(records) == 72 and failed > 0
    assert found == ["request_failed:http_400"] * failed
    assert report["requests"]["failures"] == {"http_400": failed}
    assert report["batches"]["rounds"] == 1, "a 400 is not worth another batch"


def _write_params(folder: Path) -> Path:
    annotator = {**BATCH, "model": "fake-model", "max_document_tokens": 300, "timeout_s": 5.0}
    tasks = [
        {"name": t.name, "prompt": t.prompt, "num_targets": t.num_targets, "threshold": t.threshold}
        for t in (EDUCATIONAL, ADULT)
    ]
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump({"tasks": tasks, "annotate": {"annotators": {"batch": annotator}}}))
    return path


def _start(folder: Path, server: FakeBatchServer, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_BASE_URL": server.url, "MLFILTER_CACHE": str(cache), "MLFILTER_PROGRESS": "0"}
    command = [sys.executable, str(ROOT / "stages" / "annotate.py"), "--annotator", "batch", "--input"]
    command += [str(DOCUMENTS), "--output", "out", "--report", "report.json", "--params", str(_write_params(folder))]
    return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(process: subprocess.Popen, condition: Any) -> None:
    deadline = time.monotonic() + 60
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
    process.send_signal(signal.SIGKILL)
    process.wait()


#: The endpoint each hold of the fake server stops at, and the job stages the state file may then hold.
ENDPOINT = {"upload": "upload", "create": "create", "created": "create", "poll": "poll"}
STAGES = {
    "upload": {"written"},
    "create": {"written", "uploaded"},
    "created": {"written", "uploaded"},
    "poll": {"written", "uploaded", "submitted"},
}


@pytest.mark.parametrize("hold", list(ENDPOINT))
def test_kill_9_at_each_step_then_rerun(tmp_path: Path, hold: str) -> None:
    """Killed while the server holds the upload's reply (file stored, id not saved), the batch creation
    (nothing created), its reply (batch created, id not saved) or a poll (batch ids saved): the rerun
    uploads nothing twice and creates one batch per file."""
    cache = tmp_path / "cache" / "requests.sqlite"
    with FakeBatchServer(hold=hold) as server:
        process = _start(tmp_path, server, cache)
        _kill_when(process, lambda: server.calls[ENDPOINT[hold]] >= 1 and (hold != "created" or server.batches))
        server.release.set()
        state = orjson.loads((state_folder(cache, "batch") / "state.json").read_bytes())
        stages = {job["stage"] for job in state["jobs"]}
        assert stages <= STAGES[hold] and len(state["jobs"]) == 4
        assert hold != "poll" or "submitted" in stages
        server.hold = None
        rerun = _start(tmp_path, server, cache)
        _, stderr = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, stderr.decode()
        assert server.calls["upload"] == 4, "each request file is uploaded once"
        assert len(server.batches) == 4, "one batch per request file"
        records = read_output(tmp_path / "out")
        assert len(records) == 72 and set(statuses(records)) == {OK}
        server.reset_counts()
        first = output_bytes(tmp_path / "out")
        again = _start(tmp_path, server, cache)
        assert again.wait(120) == 0
        assert server.request_count == 0 and len(server.batches) == 4, "a rerun sends nothing"
        assert output_bytes(tmp_path / "out") == first


def test_dry_run_shows_files_requests_tokens_and_cost(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeBatchServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        params = fast_params(**BATCH, price_per_input_token=1e-6, price_per_output_token=4e-6)
        plan = annotate(
            "a",
            params,
            (EDUCATIONAL, ADULT),
            [str(DOCUMENTS)],
            tmp_path / "o",
            tmp_path / "r.json",
            cache=str(cache_file),
            env_file=None,
            dry_run=True,
        )
        assert server.calls.total() == 0 and server.request_count == 0
    assert plan["to_send"] == REQUESTS
    assert [f["requests"] for f in plan["batch_files"]] == [40, 40, 40, 24]
    assert all(f["bytes"] > 0 for f in plan["batch_files"])
    expected = plan["prompt_tokens_to_send"] * 1e-6 + plan["estimated_output_tokens"] * 4e-6
    assert plan["estimated_cost"] == pytest.approx(expected) and plan["estimated_cost"] > 0


def _request(key: str, size: int) -> PreparedRequest:
    return PreparedRequest(key, orjson.dumps({"messages": [{"role": "user", "content": "x" * size}]}), size)


def test_request_files_respect_both_limits() -> None:
    requests = [_request(f"k{i}", 100) for i in range(10)]
    line = len(split_requests(requests[:1], "/v1/chat/completions", 10, 10_000)[0][0])
    assert [len(f) for f in split_requests(requests, "/v1/chat/completions", 4, 10_000)] == [4, 4, 2]
    assert [len(f) for f in split_requests(requests, "/v1/chat/completions", 100, 3 * line)] == [3, 3, 3, 1]
    lines = [orjson.loads(x) for f in split_requests(requests, "/v1/chat/completions", 4, 10_000) for x in f]
    assert [x["custom_id"] for x in lines] == [r.key for r in requests]
    assert lines[0]["body"] == orjson.loads(requests[0].payload) and lines[0]["url"] == "/v1/chat/completions"
    with pytest.raises(MlfilterError, match="more than batch_max_bytes"):
        split_requests(requests, "/v1/chat/completions", 4, line - 1)


def test_an_unreadable_state_file_is_a_clear_error(tmp_path: Path, cache_file: Path, monkeypatch) -> None:
    folder = state_folder(cache_file, "a")
    folder.mkdir(parents=True)
    (folder / "state.json").write_text('{"jobs": [{"file": "x.jsonl"}]}')
    with FakeBatchServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        with pytest.raises(MlfilterError, match=r"state\.json: unreadable batch state .*move it away"):
            run(tmp_path, cache_file, **BATCH)
        assert server.calls.total() == 0
