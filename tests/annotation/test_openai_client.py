"""The HTTP client against a real server on 127.0.0.1: faults, retries, Retry-After, endpoints, secrets."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from mlfilter.annotation.backends.openai_client import (
    EndpointError,
    OpenAIBackend,
    OpenAIClient,
    RequestFailed,
    error_text,
    retry_after_seconds,
)
from tests.annotation.conftest import fast_params
from tests.openai_server import FakeOpenAIServer, Faults


def bodies(count: int, **params: Any) -> tuple[OpenAIBackend, list[bytes]]:
    backend = OpenAIBackend(fast_params(**params))
    messages = [[{"role": "user", "content": f"Document {i}. Educational score: <points>"}] for i in range(count)]
    return backend, [backend.prepare(m, None, 0).payload for m in messages]


def send_all(
    urls: list[str], count: int, api_key: str | None = None, **client_args: Any
) -> tuple[list[Any], OpenAIClient]:
    backend, payloads = bodies(count)
    settings = {"concurrency": 8, "timeout_s": 2.0, "max_retries": 6, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
    settings.update(client_args)
    client = OpenAIClient(urls, api_key, seed=0, **settings)

    async def main() -> list[Any]:
        async with client:

            async def one(body: bytes) -> Any:
                try:
                    return await client.post(backend.path, body, backend.read)
                except RequestFailed as exc:
                    return exc

            return await asyncio.gather(*(one(b) for b in payloads))

    return asyncio.run(main()), client


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("http_500", "http_500"),
        ("http_429", "http_429"),
        ("slow", "timeout"),
        ("drop", "connection"),
        ("malformed", "bad_response"),
    ],
)
def test_each_fault_is_retried_then_reported_by_kind(fault: str, kind: str) -> None:
    faults = Faults(rate=1.0, kinds=(fault,), retry_after="0.01", slow_s=1.5)
    with FakeOpenAIServer(faults=faults) as server:
        results, client = send_all([server.url], 2, max_retries=2, timeout_s=0.6)
        assert server.request_count == 6, "one attempt and two retries per request"
    assert all(isinstance(r, RequestFailed) and r.kind == kind for r in results)
    assert client.stats.retries == {kind: 4}
    assert client.stats.failures == {kind: 2}


def test_transient_faults_are_overcome_by_retries() -> None:
    faults = Faults(
        rate=0.5, kinds=("http_500", "http_429", "drop", "malformed", "slow"), retry_after="0.01", slow_s=1.5
    )
    with FakeOpenAIServer(faults=faults) as server:
        results, client = send_all([server.url], 60, max_retries=20, timeout_s=0.6)
        injected = sum(server.fault_counts().values())
    assert all(isinstance(r, dict) and r["text"] for r in results)
    assert sum(client.stats.retries.values()) == injected > 10
    assert not client.stats.failures


def test_retry_after_is_honoured() -> None:
    faults = Faults(rate=1.0, kinds=("http_429",), retry_after="0.4")
    with FakeOpenAIServer(faults=faults) as server:
        started = time.perf_counter()
        results, _ = send_all([server.url], 1, max_retries=1, backoff_initial_s=0.001, backoff_max_s=0.001)
        elapsed = time.perf_counter() - started
    assert isinstance(results[0], RequestFailed)
    assert 0.4 <= elapsed < 2.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), (None, None), ("", None)],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_as_http_date() -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_seconds(when) <= 30


def test_requests_are_balanced_over_base_urls() -> None:
    with FakeOpenAIServer(latency=0.05) as one, FakeOpenAIServer(latency=0.05) as two:
        results, _ = send_all([one.url, two.url], 40)
        counts = (one.request_count, two.request_count)
    assert all(isinstance(r, dict) for r in results)
    assert sum(counts) == 40
    assert min(counts) >= 12, counts


def test_a_dead_node_is_routed_around() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    with FakeOpenAIServer() as live:
        results, client = send_all([dead, live.url], 30)
        assert live.request_count == 30
    assert all(isinstance(r, dict) for r in results)
    assert 1 <= client.stats.retries["connection"] <= 8, "the dead node rests after failing"


def test_a_refused_key_stops_everything_without_showing_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(api_key="right-key-123456") as server, pytest.raises(EndpointError) as info:
        send_all([server.url], 3, api_key="wrong-key-654321")
    assert "HTTP 401" in str(info.value)
    assert "wrong-key-654321" not in str(info.value)
    assert "wrong-key-654321" not in caplog.text


def test_the_key_is_sent_as_a_bearer_token() -> None:
    with FakeOpenAIServer(api_key="right-key-123456") as server:
        results, _ = send_all([server.url], 3, api_key="right-key-123456")
    assert all(isinstance(r, dict) for r in results)


def test_a_bad_request_is_not_retried(server: FakeOpenAIServer) -> None:
    client = OpenAIClient([server.url], None, max_retries=5)

    async def main() -> None:
        async with client:
            await client.post("/chat/completions", b"not json")

    with pytest.raises(RequestFailed) as info:
        asyncio.run(main())
    assert info.value.kind == "http_400"
    assert server.request_count == 1


def test_sent_counts_requests_that_reached_a_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    results, client = send_all([dead], 4, max_retries=1)
    assert all(isinstance(r, RequestFailed) and r.kind == "connection" for r in results)
    assert client.stats.sent == 0 and client.stats.attempts == 8
    with FakeOpenAIServer(faults=Faults(rate=1.0, kinds=("http_500",))) as server:
        results, client = send_all([server.url], 4, max_retries=1)
    assert all(isinstance(r, RequestFailed) for r in results) and client.stats.sent == 4


def test_server_error_texts_are_kept_per_kind() -> None:
    faults = Faults(rate=0.5, kinds=("http_500", "http_429"), retry_after="0.01")
    with FakeOpenAIServer(faults=faults) as server:
        _, client = send_all([server.url], 20, max_retries=10)
        injected = server.fault_counts()
    assert injected["http_500"] > 1 and injected["http_429"] > 1, "both kinds, several times"
    assert client.stats.errors == {"http_500": ["injected server error"], "http_429": ["injected rate limit"]}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"error": {"message": "bad  model\\nname", "code": 400}}', "bad model name"),
        (b'{"object": "error", "message": "too long", "code": 400}', "too long"),
        (b'{"detail": [{"loc": ["body"], "msg": "field required"}]}', '[{"loc":["body"],"msg":"field required"}]'),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
    ],
)
def test_error_text_reads_what_servers_send(body: bytes, text: str) -> None:
    assert error_text(body) == text
