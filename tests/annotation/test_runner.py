"""Annotating through a real OpenAI-compatible server: records, cache, faults, dry runs, secrets."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from mlfilter.annotation.params import SamplingParams
from mlfilter.annotation.prompts import PromptError
from mlfilter.annotation.runner import AnnotationRun, Annotator, annotate
from mlfilter.annotation.statuses import NO_SCORE, OK, OUT_OF_RANGE
from mlfilter.documents import Document, read_documents
from mlfilter.errors import MlfilterError
from tests.annotation.conftest import ADULT, DOCUMENTS, EDUCATIONAL, fast_params, output_bytes, read_output
from tests.openai_server import FakeOpenAIServer, Faults

TRANSIENT = ("http_500", "http_429", "slow", "drop", "malformed")


def run(server: FakeOpenAIServer, tmp_path: Path, cache_file: Path, *, tasks=(EDUCATIONAL,), name="a", **params: Any):
    """Annotate the test documents; returns (records, report)."""
    out = tmp_path / "out" / name
    report = annotate(
        name,
        fast_params(**params),
        tasks,
        [str(DOCUMENTS)],
        out,
        tmp_path / f"{name}.json",
        cache=str(cache_file),
        env_file=None,
    )
    return read_output(out), report


@pytest.fixture(autouse=True)
def _server_env(monkeypatch: pytest.MonkeyPatch, server: FakeOpenAIServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)


def planned(annotator: Annotator) -> list[tuple[Document, Any]]:
    return [(doc, annotator.plan(doc)) for _, doc in read_documents([str(DOCUMENTS)])]


def prompt_text(payload: bytes) -> str:
    return "\n".join(m["content"] for m in orjson.loads(payload)["messages"])


def test_records_follow_the_contract(server: FakeOpenAIServer, tmp_path: Path, cache_file: Path) -> None:
    records, report = run(
        server, tmp_path, cache_file, tasks=(EDUCATIONAL, ADULT), n=2, sampling=SamplingParams(seed=7)
    )
    assert len(records) == 72
    assert server.request_count == 72 * 2 * 2
    annotator = Annotator("a", fast_params(n=2, sampling=SamplingParams(seed=7)), (EDUCATIONAL, ADULT))
    for record, (doc, plan) in zip(records, planned(annotator), strict=True):
        assert record["id"] == doc.id
        assert set(record) == {
            "id",
            "annotator",
            "model",
            "prompt",
            "scores",
            "status",
            "replies",
            "usage",
            "truncated",
            "finish_reason",
            "reasoning",
        }
        assert record["annotator"] == "a" and record["model"] == "fake-model"
        assert record["prompt"]["educational"]["name"] == "educational_v1"
        assert record["prompt"]["adult"]["name"] == "adult_v1"
        assert record["prompt"]["educational"]["language"] == {"en": "en", "deu": "de", "spa": "es"}[doc.language]
        for task_plan, num_labels in zip(plan.tasks, (6, 4), strict=True):
            expected = [server.expected_score(prompt_text(r.payload), num_labels) for r in task_plan.requests]
            assert record["scores"][task_plan.task] == expected
            assert record["status"][task_plan.task] == [OK, OK]
            assert all(
                f"score: {s}" in reply for s, reply in zip(expected, record["replies"][task_plan.task], strict=True)
            )
        assert record["usage"]["prompt_tokens"] > 0 and record["usage"]["completion_tokens"] > 0
        assert record["truncated"]["educational"] == (len(doc.text) > 300 * 4)
    seeds = [orjson.loads(r.payload)["seed"] for _, plan in planned(annotator) for r in plan.requests()]
    assert len(set(seeds)) == len(seeds), "every request draws its own random numbers"
    assert report["requests"] == {
        "planned": 288,
        "unique": 288,
        "cache_hits": 0,
        "sent": 288,
        "succeeded": 288,
        "failed": 0,
        "failures": {},
        "retries": {},
        "errors": {},
    }
    assert report["prompt_languages"]["educational"] == {"de": 6, "en": 60, "es": 6}
    assert report["truncation"]["method"] == "characters"
    assert report["throughput"]["docs_per_s"] > 0 and report["latency_s"]["p95"] is not None
    seconds = report["throughput"]["seconds"]
    assert report["tokens"]["sent_prompt"] == report["tokens"]["prompt"] > 0
    assert report["throughput"]["prompt_tokens_per_s"] == pytest.approx(report["tokens"]["prompt"] / seconds, rel=1e-2)


def test_a_rerun_sends_nothing_and_writes_the_same_bytes(
    server: FakeOpenAIServer, tmp_path: Path, cache_file: Path
) -> None:
    run(server, tmp_path, cache_file, name="first")
    first = output_bytes(tmp_path / "out" / "first")
    server.reset_counts()
    _, report = run(server, tmp_path, cache_file, name="first")
    assert server.request_count == 0
    assert report["requests"]["cache_hits"] == 72 and report["requests"]["sent"] == 0
    assert output_bytes(tmp_path / "out" / "first") == first


def test_under_30_percent_faults_every_document_ends_annotated(tmp_path: Path, cache_file: Path, monkeypatch) -> None:
    faults = Faults(rate=0.3, retry_after="0.02", slow_s=1.5, seed=3)
    with FakeOpenAIServer(faults=faults) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        records, report = run(
            server,
            tmp_path,
            cache_file,
            tasks=(EDUCATIONAL, ADULT),
            timeout_s=0.6,
            max_retries=15,
            max_invalid_fraction=1,
        )
        injected = server.fault_counts()
    assert set(injected) == set(TRANSIENT) | {"no_score", "out_of_range"}
    assert [r["id"] for r in records] == [doc.id for _, doc in read_documents([str(DOCUMENTS)])]
    annotator = Annotator("a", fast_params(), (EDUCATIONAL, ADULT))
    statuses: Counter[str] = Counter()
    for record, (_, plan) in zip(records, planned(annotator), strict=True):
        for task_plan in plan.tasks:
            fault = server.content_fault(task_plan.requests[0].payload)
            expected = {None: OK, "no_score": NO_SCORE, "out_of_range": OUT_OF_RANGE}[fault]
            assert record["status"][task_plan.task] == [expected]
            assert (record["scores"][task_plan.task][0] is None) == (expected != OK)
            statuses[expected] += 1
    assert statuses[NO_SCORE] > 0 and statuses[OUT_OF_RANGE] > 0
    assert report["requests"]["failed"] == 0
    assert sum(report["requests"]["retries"].values()) == sum(injected[k] for k in TRANSIENT)
    invalid = report["generations"]["invalid_fraction"]
    assert invalid["educational"] + invalid["adult"] == pytest.approx(
        (statuses[NO_SCORE] + statuses[OUT_OF_RANGE]) / 72
    )


def test_requests_that_fail_for_good_are_recorded_and_retried_on_rerun(
    tmp_path: Path, cache_file: Path, monkeypatch
) -> None:
    faults = Faults(rate=0.3, kinds=TRANSIENT, retry_after="0.01", slow_s=1.5, seed=5)
    with FakeOpenAIServer(faults=faults) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        with pytest.raises(MlfilterError, match=r"generations are invalid .*more than max_invalid_fraction 0\.05"):
            run(server, tmp_path, cache_file, timeout_s=0.6, max_retries=0)
        report = json.loads((tmp_path / "a.json").read_text())
        records = read_output(tmp_path / "out" / "a")
    failed = [s for r in records for s in r["status"]["educational"] if s.startswith("request_failed:")]
    kinds = {s.split(":", 1)[1] for s in failed}
    assert len(records) == 72 and failed
    assert kinds <= {"http_500", "http_429", "timeout", "connection", "bad_response"}
    assert report["requests"]["failed"] == len(failed) == sum(report["requests"]["failures"].values())
    assert all(r["scores"]["educational"] == [None] for r in records if r["status"]["educational"][0] != OK)
    with FakeOpenAIServer() as healthy:
        monkeypatch.setenv("OPENAI_BASE_URL", healthy.url)
        records, report = run(healthy, tmp_path, cache_file)
        assert healthy.request_count == len(failed), "only the failed requests are sent again"
    assert all(r["status"]["educational"] == [OK] for r in records)


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_logprobs_mode(server: FakeOpenAIServer, tmp_path: Path, cache_file: Path, api: str) -> None:
    params: dict[str, Any] = {"score_mode": "logprobs", "api": api}
    if api == "completions":
        params["tokenizer"] = "embedded:SmolLM2-135M-Instruct"
    records, report = run(server, tmp_path, cache_file, **params)
    annotator = Annotator("a", fast_params(**params), (EDUCATIONAL,))
    for record, (_, plan) in zip(records, planned(annotator), strict=True):
        body = orjson.loads(plan.tasks[0].requests[0].payload)
        assert body["max_tokens"] == 1
        if api == "chat":
            assert body["messages"][-1] == {"role": "assistant", "content": "Educational score: "}
            assert body["continue_final_message"] is True and body["top_logprobs"] == 20
            text = prompt_text(plan.tasks[0].requests[0].payload)
        else:
            assert body["prompt"].endswith("<|im_start|>assistant\nEducational score: ") and body["logprobs"] == 20
            text = body["prompt"]
        distribution = record["distribution"]["educational"][0]
        assert len(distribution) == 6 and sum(distribution) == pytest.approx(1, abs=1e-5)
        peak = server.expected_score(text, 6)
        assert max(range(6), key=distribution.__getitem__) == peak
        assert record["scores"]["educational"][0] == pytest.approx(
            sum(i * p for i, p in enumerate(distribution)), abs=1e-3
        )
        assert record["status"]["educational"] == [OK] and 0.9 < record["label_mass"]["educational"][0] <= 1
    assert report["score_mode"] == "logprobs"


def test_forced_reply_prefix_in_generate_mode(server: FakeOpenAIServer, tmp_path: Path, cache_file: Path) -> None:
    records, _ = run(server, tmp_path, cache_file, force_reply_prefix=True)
    assert all(r["replies"]["educational"][0].isdigit() for r in records)
    assert all(r["status"]["educational"] == [OK] for r in records)


def test_dry_run_counts_what_would_be_sent(server: FakeOpenAIServer, tmp_path: Path, cache_file: Path) -> None:
    def dry() -> dict[str, Any]:
        params = fast_params(n=2, sampling=SamplingParams(seed=1, max_new_tokens=100))
        return annotate("a", params, (EDUCATIONAL,), [str(DOCUMENTS)], "x", "y", cache=str(cache_file), dry_run=True)

    before = dry()
    assert before["requests"] == 144 and before["to_send"] == 144 and before["cache_hits"] == 0
    assert before["estimated_output_tokens"] == 144 * 100
    assert before["prompt_tokens_to_send"] > 144 * 100
    assert before["prompt_tokens_method"].startswith("estimate")
    assert server.request_count == 0 and not (tmp_path / "x").exists()
    run(server, tmp_path, cache_file, n=2, sampling=SamplingParams(seed=1, max_new_tokens=100))
    after = dry()
    assert after["cache_hits"] == 144 and after["to_send"] == 0 and after["prompt_tokens_to_send"] == 0
    assert after["output_tokens_basis"] == "mean completion tokens of 144 cached results"


def test_identical_texts_are_asked_once_and_empty_ones_counted(
    server: FakeOpenAIServer, tmp_path: Path, cache_file: Path
) -> None:
    docs = tmp_path / "docs.jsonl"
    rows = [
        {"id": "1", "text": "Photosynthesis turns light into sugar."},
        {"id": "2", "text": "Photosynthesis turns light into sugar."},
        {"id": "3", "text": "   "},
        {"id": "4", "text": "Braces {document} and {{ jinja }} are data."},
    ]
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n", encoding="utf-8")
    annotator = Annotator("a", fast_params(), (EDUCATIONAL,))
    report = AnnotationRun(annotator, [str(docs)], cache_file, on_error="skip").run(tmp_path / "out")
    records = read_output(tmp_path / "out")
    assert [r["id"] for r in records] == ["1", "2", "4"]
    assert records[0]["scores"] == records[1]["scores"]
    assert server.request_count == 2
    assert report["documents"] == {"seen": 5, "kept": 3, "dropped": {"empty_text": 1, "invalid_json": 1}}
    assert report["requests"]["planned"] == 3 and report["requests"]["unique"] == 2


def test_one_annotator_can_use_its_own_prompt_version(
    server: FakeOpenAIServer, tmp_path: Path, cache_file: Path
) -> None:
    v2 = tmp_path / "educational_v2.yaml"
    v2.write_text(Path(EDUCATIONAL.prompt).read_text().replace("experienced teacher", "strict teacher"))
    records, report = run(server, tmp_path, cache_file, prompts={"educational": str(v2)})
    assert {r["prompt"]["educational"]["name"] for r in records} == {"educational_v2"}
    assert report["prompts"]["educational"]["name"] == "educational_v2"
    five = tmp_path / "five_v1.yaml"
    five.write_text("labels: [1, 2, 3, 4, 5]\nscore_prefix: 'Score: '\nlanguages: {en: {user: '{document}'}}\n")
    with pytest.raises(PromptError, match=r"5 labels .* but task 'educational' has num_targets 6"):
        Annotator("a", fast_params(prompts={"educational": str(five)}), (EDUCATIONAL,))
    with pytest.raises(MlfilterError, match="unknown task 'toxic'"):
        Annotator("a", fast_params(prompts={"toxic": str(five)}), (EDUCATIONAL,))


def test_missing_base_url_is_a_clear_error(tmp_path: Path, cache_file: Path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(MlfilterError, match="environment variable OPENAI_BASE_URL is not set"):
        annotate(
            "a",
            fast_params(),
            (EDUCATIONAL,),
            [str(DOCUMENTS)],
            tmp_path / "o",
            tmp_path / "r.json",
            cache=str(cache_file),
            env_file=None,
        )


def test_urls_and_keys_come_from_named_env_vars_and_go_nowhere(
    tmp_path: Path, cache_file: Path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-test-0123456789abcdef"
    env_file = tmp_path / ".env"
    with FakeOpenAIServer(api_key=secret) as server:
        env_file.write_text(f"MY_LLM_URLS={server.url}\nMY_LLM_KEY={secret}\n")
        monkeypatch.delenv("MY_LLM_URLS", raising=False)
        monkeypatch.delenv("MY_LLM_KEY", raising=False)
        params = fast_params(base_url_env="MY_LLM_URLS", api_key_env="MY_LLM_KEY")
        out, report_path = tmp_path / "out", tmp_path / "report.json"
        annotate(
            "a", params, (EDUCATIONAL,), [str(DOCUMENTS)], out, report_path, cache=str(cache_file), env_file=env_file
        )
        assert server.request_count == 72
    stored = b"".join(output_bytes(out).values()) + report_path.read_bytes() + cache_file.read_bytes()
    for value in (secret, server.url, f"127.0.0.1:{server.port}"):
        assert value.encode() not in stored
        assert value not in caplog.text


def test_dry_run_counts_chat_prompts_with_the_chat_template(tmp_path: Path, cache_file: Path) -> None:
    annotator = Annotator("a", fast_params(tokenizer="embedded:SmolLM2-135M-Instruct"), (EDUCATIONAL,))
    tokenizer = annotator.backend.tokenizer
    expected = 0
    for _, plan in planned(annotator):
        messages = orjson.loads(plan.tasks[0].requests[0].payload)["messages"]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        expected += len(tokenizer(text, add_special_tokens=False)["input_ids"])
    dry = AnnotationRun(annotator, [str(DOCUMENTS)], cache_file).dry_run()
    assert dry["prompt_tokens_method"] == "tokenizer with the chat template"
    assert dry["prompt_tokens_to_send"] == expected


def test_dry_run_scales_characters_by_the_servers_counts_once_known(
    server: FakeOpenAIServer, tmp_path: Path, cache_file: Path
) -> None:
    run(server, tmp_path, cache_file, max_document_tokens=0)
    params = fast_params(n=2, chars_per_token=1.0, max_document_tokens=0)
    dry = annotate("a", params, (EDUCATIONAL,), [str(DOCUMENTS)], "x", "y", cache=str(cache_file), dry_run=True)
    assert dry["to_send"] == 72 and dry["prompt_tokens_method"] == "server counts of 72 cached results, per character"
    second = [plan.tasks[0].requests[1].payload for _, plan in planned(Annotator("a", params, (EDUCATIONAL,)))]
    server_counts = sum(len(prompt_text(p)) // 4 for p in second)
    assert dry["prompt_tokens_to_send"] == pytest.approx(server_counts, rel=0.01)


def test_the_documents_bar_counts_every_input_record_once(tmp_path: Path, cache_file: Path, monkeypatch) -> None:
    """Duplicate texts (one request), an empty text, a broken line, requests failed for good, cache hits:
    the bar's total is the input's record count and it ends there, on a first run and on a cached rerun."""
    from mlfilter.annotation import runner

    bars: list[Any] = []
    original = runner.progress_bar

    def recording_bar(**kwargs: Any) -> Any:
        bars.append(original(**kwargs))
        return bars[-1]

    monkeypatch.setattr(runner, "progress_bar", recording_bar)
    monkeypatch.setenv("MLFILTER_PROGRESS", "1")
    docs = tmp_path / "docs.jsonl"
    texts = ["Photosynthesis turns light into sugar.", "Photosynthesis turns light into sugar.", "   "]
    texts += [f"Document {i} explains a topic of its own." for i in range(20)]
    docs.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)) + "{broken\n")
    params = fast_params(max_retries=0, max_invalid_fraction=1.0)
    failed = []
    for faults in (Faults(rate=0.3, kinds=("http_500",), seed=3), Faults()):
        bars.clear()
        with FakeOpenAIServer(faults=faults) as server:
            monkeypatch.setenv("OPENAI_BASE_URL", server.url)
            run = AnnotationRun(Annotator("a", params, (EDUCATIONAL,)), [str(docs)], cache_file, on_error="skip")
            report = run.run(tmp_path / "out")
        documents, writing = bars
        assert documents.desc == "annotate@a: documents" and documents.total == len(texts) + 1
        assert documents.n == documents.total, "every record, kept or dropped, counted once"
        assert writing.desc == "annotate@a: writing" and writing.n == writing.total == report["documents"]["kept"] == 22
        failed.append(report["requests"]["failed"])
    assert failed[0] > 0 and failed[1] == 0 and report["requests"]["cache_hits"] > 0
