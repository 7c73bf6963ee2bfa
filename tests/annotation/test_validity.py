"""Validity before value: each reply real servers give, from the fake server, ends in the right status or error."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from mlfilter.annotation import statuses
from mlfilter.annotation.backends import openai_client
from mlfilter.annotation.backends.openai_client import REASONING_CHARS, EndpointError, EndpointsDown
from mlfilter.annotation.cache import RequestCache
from mlfilter.annotation.params import SamplingParams
from mlfilter.annotation.runner import Annotator, PrefixIgnored, annotate
from mlfilter.documents import read_documents
from mlfilter.errors import MlfilterError
from tests.annotation.conftest import DOCUMENTS, EDUCATIONAL, fast_params, read_output
from tests.openai_server import CONTEXT_LENGTH_MESSAGE, FakeOpenAIServer, Faults

DOC_COUNT = 72


def run(
    server: FakeOpenAIServer, tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch, **params: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Annotate the test documents against ``server``; returns (records, report)."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    annotate(
        "a",
        fast_params(**params),
        (EDUCATIONAL,),
        [str(DOCUMENTS)],
        out,
        report_path,
        cache=str(cache_file),
        env_file=None,
    )
    return read_output(out), json.loads(report_path.read_text())


def first_payloads(**params: Any) -> list[bytes]:
    """The request body of each test document's first generation, in input order."""
    annotator = Annotator("a", fast_params(**params), (EDUCATIONAL,))
    return [annotator.plan(doc).tasks[0].requests[0].payload for _, doc in read_documents([str(DOCUMENTS)])]


#: status → (fault the fake server injects, annotator params): a reply real servers give, and its status.
CASES: dict[str, tuple[str | None, dict[str, Any]]] = {
    statuses.OK: (None, {}),
    statuses.LENGTH: ("length", {}),
    statuses.NO_SCORE: ("no_score", {}),
    statuses.OUT_OF_RANGE: ("out_of_range", {}),
    statuses.EMPTY_REPLY: ("empty_reply", {}),
    statuses.REASONING_ONLY: ("reasoning_only", {}),
    statuses.NO_LABEL_TOKEN: ("new_turn", {"score_mode": "logprobs"}),
    statuses.LOW_LABEL_MASS: ("low_mass", {"score_mode": "logprobs"}),
    statuses.NO_LOGPROBS: ("empty_top_logprobs", {"score_mode": "logprobs"}),
    statuses.REFUSED: ("refusal", {}),
    statuses.INVALID_JSON: ("schema_break", {"score_mode": "json"}),
    "request_failed:<kind>": ("context_length", {}),
}


def test_every_status_has_a_case() -> None:
    assert set(CASES) == set(statuses.DESCRIPTIONS)


@pytest.mark.parametrize("status", list(CASES))
def test_each_reply_ends_in_its_status(
    status: str, tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault, params = CASES[status]
    expected = "request_failed:context_length" if fault == "context_length" else status
    faults = Faults(rate=0.3, kinds=(fault,)) if fault else Faults()
    with FakeOpenAIServer(faults=faults) as server:
        records, report = run(server, tmp_path, cache_file, monkeypatch, max_invalid_fraction=1.0, **params)
        hit = [fault is not None and server.content_fault(p) == fault for p in first_payloads(**params)]
        requests = server.request_count
    assert len(records) == DOC_COUNT
    for record, faulty in zip(records, hit, strict=True):
        assert record["status"]["educational"] == [expected if faulty else statuses.OK]
        assert (record["scores"]["educational"][0] is None) == faulty
    if fault:
        assert 0 < sum(hit) < DOC_COUNT
        assert report["generations"]["status"]["educational"][expected] == sum(hit)
        assert report["generations"]["status_by_language"]["educational"]["en"][expected] > 0
    assert requests == DOC_COUNT, "no reply of these is retried"


def test_a_context_length_error_is_kept_not_retried_and_points_at_max_document_tokens(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(faults=Faults(rate=1.0, kinds=("context_length",))) as server:
        with pytest.raises(MlfilterError) as error:
            run(server, tmp_path, cache_file, monkeypatch)
        assert server.request_count == DOC_COUNT
    message = str(error.value)
    assert "request_failed:context_length 72" in message and "max_document_tokens" in message
    assert "maximum context length is 2048 tokens" in message and "rerun" not in message.casefold()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["requests"]["errors"] == {"context_length": [CONTEXT_LENGTH_MESSAGE]}
    assert report["requests"]["failures"] == {"context_length": 72} and report["requests"]["retries"] == {}


def test_the_budget_message_names_top_statuses_examples_and_the_fix(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = Faults(rate=0.5, kinds=("no_score", "length"))
    with FakeOpenAIServer(faults=faults) as server:
        with pytest.raises(MlfilterError) as error:
            run(server, tmp_path, cache_file, monkeypatch)
        kinds = [server.content_fault(p) for p in first_payloads()]
    length, no_score = kinds.count("length"), kinds.count("no_score")
    assert length > no_score > 0, "the test needs 'length' on top"
    lines = str(error.value).splitlines()
    assert lines[0] == (
        f"annotator 'a', task 'educational': {length + no_score} of 72 generations are invalid "
        f"({(length + no_score) / 72:.1%}), more than max_invalid_fraction 0.05. Top statuses: length {length}, "
        f"no_score {no_score}. Examples:"
    )
    examples = lines[1:4]
    long_ids = [
        doc.id for (_, doc), kind in zip(read_documents([str(DOCUMENTS)]), kinds, strict=True) if kind == "length"
    ]
    for line, doc_id in zip(examples, long_ids[:3], strict=True):
        assert line.startswith(f"  length: document {doc_id!r}, finish_reason length, reply 'It would deserve ")
    assert lines[4].startswith("Most likely fix: sampling.max_new_tokens")
    assert len(read_output(tmp_path / "out")) == 72, "the output is written before the stage fails"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["generations"]["invalid_fraction"]["educational"] == pytest.approx((length + no_score) / 72, abs=1e-6)
    assert len(report["generations"]["examples"]["educational"]["length"]) == 3


def test_a_cut_off_reply_counts_only_when_the_user_accepts_it(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(faults=Faults(rate=1.0, kinds=("length",))) as server:
        records, _ = run(server, tmp_path, cache_file, monkeypatch, accept_length=True)
    assert all(r["status"]["educational"] == [statuses.OK] for r in records)
    assert all(r["finish_reason"]["educational"] == ["length"] for r in records)
    assert all(r["scores"]["educational"][0] is not None for r in records)


def test_reasoning_models_score_the_final_answer_and_keep_the_reasoning(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampling = SamplingParams(max_new_tokens=64, max_reasoning_tokens=1024, reasoning_effort="low")
    with FakeOpenAIServer(faults=Faults(rate=1.0, kinds=("reasoning",))) as server:
        records, report = run(server, tmp_path, cache_file, monkeypatch, sampling=sampling)
    body = orjson.loads(first_payloads(sampling=sampling)[0])
    assert body["max_tokens"] == 64 + 1024 and body["reasoning_effort"] == "low"
    for record in records:
        assert record["status"]["educational"] == [statuses.OK]
        reasoning = record["reasoning"]["educational"][0]
        assert reasoning.startswith("Let me think") and len(reasoning) <= REASONING_CHARS + 3
        assert record["usage"]["reasoning_tokens"] > 0
    assert report["tokens"]["reasoning"] == sum(r["usage"]["reasoning_tokens"] for r in records)
    assert report["tokens"]["sent_reasoning"] == report["tokens"]["reasoning"]


def test_a_server_that_ignores_the_reply_prefix_stops_the_run_early(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(faults=Faults(rate=1.0, kinds=("new_turn",))) as server:
        with pytest.raises(PrefixIgnored, match=r"16 of the first 16 replies .*'Educational'.*api: completions"):
            run(server, tmp_path, cache_file, monkeypatch, score_mode="logprobs", concurrency=4)
        sent = server.request_count
    assert sent < DOC_COUNT
    assert 16 <= len(RequestCache(cache_file)) <= sent, "finished requests are committed"


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_json_mode_sends_a_schema_and_reads_valid_replies(
    api: str, server: FakeOpenAIServer, tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params: dict[str, Any] = {"score_mode": "json", "api": api, "n": 2, "sampling": SamplingParams(temperature=0.7)}
    if api == "completions":
        params["tokenizer"] = "embedded:SmolLM2-135M-Instruct"
    records, _ = run(server, tmp_path, cache_file, monkeypatch, **params)
    bodies = [orjson.loads(p) for p in first_payloads(**params)]
    schema = bodies[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["score"] == {"type": "integer", "enum": [0, 1, 2, 3, 4, 5]}
    for record, body in zip(records, bodies, strict=True):
        text = body["prompt"] if api == "completions" else "\n".join(m["content"] for m in body["messages"])
        score = server.expected_score(text, 6)
        assert record["status"]["educational"] == [statuses.OK, statuses.OK]
        assert record["scores"]["educational"][0] == score
        assert record["replies"]["educational"][0] == f'{{"score":{score}}}'


def test_a_server_that_rejects_the_schema_names_the_mode_to_use(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(reject_schema=True) as server:
        with pytest.raises(MlfilterError, match=r"rejects score_mode: json .*not supported.*Use score_mode: generate"):
            run(server, tmp_path, cache_file, monkeypatch, score_mode="json")
        assert server.request_count < DOC_COUNT


def test_when_every_endpoint_is_down_the_run_stops_within_the_limit_and_resumes(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_client, "DOWN_AFTER_S", 1.0)
    dead = FakeOpenAIServer(stop_after=30).start()
    started = time.perf_counter()
    with pytest.raises(EndpointsDown, match=rf"refused connections .*\(http://127\.0\.0\.1:{dead.port}\).*rerun"):
        run(dead, tmp_path, cache_file, monkeypatch, concurrency=4, max_retries=50, backoff_max_s=0.2)
    assert time.perf_counter() - started < 15
    dead.stop()
    finished = len(RequestCache(cache_file))
    assert 20 <= finished < 30
    with FakeOpenAIServer() as healthy:
        records, report = run(healthy, tmp_path, cache_file, monkeypatch)
        assert healthy.request_count == DOC_COUNT - finished
    assert report["requests"]["sent"] == DOC_COUNT - finished and len(records) == DOC_COUNT


def test_a_fully_cached_rerun_needs_no_endpoint(
    server: FakeOpenAIServer, tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, _ = run(server, tmp_path, cache_file, monkeypatch)
    monkeypatch.delenv("OPENAI_BASE_URL")
    out = tmp_path / "again"
    report = annotate(
        "a", fast_params(), (EDUCATIONAL,), [str(DOCUMENTS)], out, tmp_path / "r.json", cache=str(cache_file)
    )
    assert read_output(out) == records and report["requests"]["sent"] == 0
    with pytest.raises(MlfilterError, match=r"72 request\(s\) are not in the cache and .*OPENAI_BASE_URL is not set"):
        annotate(
            "a", fast_params(n=2), (EDUCATIONAL,), [str(DOCUMENTS)], out, tmp_path / "r.json", cache=str(cache_file)
        )


def test_a_key_echoed_by_the_server_is_masked(
    tmp_path: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-live-0123456789abcdef"
    monkeypatch.setenv("MY_LLM_KEY", secret)
    with FakeOpenAIServer(echo_auth=True) as server, pytest.raises(EndpointError) as error:
        run(server, tmp_path, cache_file, monkeypatch, api_key_env="MY_LLM_KEY")
    assert "answered HTTP 401" in str(error.value) and "Bearer ***" in str(error.value)
    assert secret not in str(error.value)


def test_seeds_differ_across_documents_and_generations() -> None:
    annotator = Annotator("a", fast_params(n=3, sampling=SamplingParams(seed=1, temperature=0.7)), (EDUCATIONAL,))
    plans = [annotator.plan(doc) for _, doc in read_documents([str(DOCUMENTS)])]
    seeds = [[orjson.loads(r.payload)["seed"] for r in plan.tasks[0].requests] for plan in plans]
    for generation in range(3):
        assert len({row[generation] for row in seeds}) == DOC_COUNT, "each document draws its own numbers"
    assert all(len(set(row)) == 3 for row in seeds)
    first = next(iter(read_documents([str(DOCUMENTS)])))[1]
    again = Annotator("a", fast_params(n=3, sampling=SamplingParams(seed=1, temperature=0.7)), (EDUCATIONAL,))
    assert [orjson.loads(r.payload)["seed"] for r in again.plan(first).requests()] == seeds[0], "reproducible"
    other = Annotator("a", fast_params(n=3, sampling=SamplingParams(seed=2, temperature=0.7)), (EDUCATIONAL,))
    assert not set(orjson.loads(r.payload)["seed"] for r in other.plan(first).requests()) & set(seeds[0])
