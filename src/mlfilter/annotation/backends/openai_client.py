"""The ``openai`` backend: any OpenAI-compatible server (vLLM, TGI's Messages API, llama.cpp server, OpenAI).

:class:`OpenAIClient` is the HTTP layer: one aiohttp session (connection reuse) for hundreds of
requests in flight, a per-request timeout, retries with exponential backoff and jitter on 429, 5xx,
timeouts, dropped connections and malformed replies — honouring ``Retry-After`` — and several base
URLs balanced by requests in flight (a node that refuses connections is rested for a while). Client
errors a retry cannot fix (400, 413, 422; a context-length overflow) fail at once; the server's own
error texts are kept (the first few distinct ones per kind). When every base URL has refused
connections for ``down_after_s`` seconds in a row, :class:`EndpointsDown` stops the run.
:class:`OpenAIBackend` builds chat-completions or completions payloads (the latter with the chat
template applied here) for generate and logprobs mode, and reads replies into cache results.

The API key goes into one request header and nowhere else: never into logs, errors, results or reports
(error texts are masked with :func:`mlfilter.logs.redact`, as some servers echo the header).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from mlfilter.annotation.backends.base import PreparedRequest, request_key, request_seed
from mlfilter.annotation.params import AnnotatorParams
from mlfilter.annotation.validity import score_schema
from mlfilter.errors import MlfilterError
from mlfilter.logs import redact

log = logging.getLogger(__name__)

#: HTTP statuses worth another try: rate limits, server errors, request timeouts, conflicts.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = {401: "the server refused the API key", 403: "access denied", 404: "endpoint or model not found"}
_ENDPOINT_REST_S = 5.0
#: Seconds of nothing but refused connections on every base URL before the run stops (:class:`EndpointsDown`).
DOWN_AFTER_S = 15.0
#: Refused connections in a row an endpoint needs (besides the seconds) to count as down.
_DOWN_AFTER_FAILURES = 3
#: Distinct server error texts kept per failure kind.
ERROR_TEXTS_PER_KIND = 3
_ERROR_TEXT_CHARS = 500
#: Reasoning text kept per reply: its start and its end (where the conclusion is).
REASONING_CHARS = 2000
_CONTEXT_LENGTH = re.compile(
    r"context length|context window|context_length|max_model_len|maximum (?:input )?length|too many tokens|"
    r"prompt is too long|input is too long|exceeds? the (?:model'?s? )?max",
    re.IGNORECASE,
)


class RequestFailed(Exception):
    """A request failed for good; ``kind`` names why (``timeout``, ``connection``, ``http_500``, …)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class EndpointError(MlfilterError):
    """The server rejects every request (bad key, wrong URL or model): annotating cannot go on."""


class EndpointsDown(MlfilterError):
    """Every base URL has refused connections for a while: sending more would only wait and fail."""


def error_text(payload: bytes) -> str:
    """The server's own words from an error body: ``error.message`` (OpenAI, vLLM), ``message`` or
    ``detail`` (TGI, FastAPI), else the body itself; at most 500 characters."""
    text = payload.decode("utf-8", "replace")
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error")
        found = inner.get("message") if isinstance(inner, dict) else inner
        found = found or data.get("message") or data.get("detail")
        if found:
            text = found if isinstance(found, str) else orjson.dumps(found).decode()
    return " ".join(text.split())[:_ERROR_TEXT_CHARS]


def display_url(url: str) -> str:
    """A base URL as logs may show it: scheme, host and port only (no credentials, path or query)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), else None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


@dataclass
class Endpoint:
    """One base URL, the requests in flight to it, and until when it rests after connection failures."""

    url: str
    in_flight: int = 0
    rest_until: float = 0.0
    sent: int = 0
    refused_in_row: int = 0
    refused_since: float = 0.0


class EndpointPool:
    """Picks the base URL with the fewest requests in flight, skipping resting ones (round-robin on ties)."""

    def __init__(self, base_urls: Sequence[str]) -> None:
        self.endpoints = [Endpoint(url.rstrip("/")) for url in base_urls]
        self._turn = 0

    def acquire(self) -> Endpoint:
        """The endpoint for the next attempt; its in-flight count goes up."""
        now = time.monotonic()
        n = len(self.endpoints)
        self._turn = (self._turn + 1) % n
        candidates = [
            (e.in_flight, (i - self._turn) % n, e) for i, e in enumerate(self.endpoints) if e.rest_until <= now
        ]
        if not candidates:
            candidates = [(e.in_flight, (i - self._turn) % n, e) for i, e in enumerate(self.endpoints)]
        best = min(candidates, key=lambda c: (c[0], c[1]))[2]
        best.in_flight += 1
        best.sent += 1
        return best

    def release(self, endpoint: Endpoint, *, connection_failed: bool = False) -> None:
        """The attempt ended; after a refused connection the endpoint rests a few seconds, and any other
        outcome (the server answered, or the connection broke after it was made) ends its run of refusals."""
        endpoint.in_flight -= 1
        if not connection_failed:
            endpoint.refused_in_row = 0
            return
        now = time.monotonic()
        if endpoint.refused_in_row == 0:
            endpoint.refused_since = now
        endpoint.refused_in_row += 1
        if len(self.endpoints) > 1:
            endpoint.rest_until = now + _ENDPOINT_REST_S

    def all_down(self, down_after_s: float) -> bool:
        """True when every endpoint has refused connections, and nothing else, for ``down_after_s`` seconds."""
        now = time.monotonic()
        return all(
            e.refused_in_row >= _DOWN_AFTER_FAILURES and now - e.refused_since >= down_after_s for e in self.endpoints
        )


@dataclass
class ClientStats:
    """What the client did: attempts, requests that reached a server (``sent``), retries and final
    failures per kind, the first distinct server error texts per kind, latencies of successes."""

    attempts: int = 0
    sent: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    errors: dict[str, list[str]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Call:
    """One HTTP request as the client sends (and resends) it."""

    method: str
    path: str
    body: bytes | None
    content_type: str
    decode: Callable[[bytes], Any]


@dataclass(frozen=True)
class _Retry:
    """An attempt that failed in a way worth retrying."""

    kind: str
    retry_after: float | None = None
    reached: bool = True


class OpenAIClient:
    """Async JSON POSTs to OpenAI-compatible base URLs with retries; use as ``async with``."""

    def __init__(
        self,
        base_urls: Sequence[str],
        api_key: str | None,
        *,
        concurrency: int = 64,
        timeout_s: float = 300.0,
        max_retries: int = 8,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        seed: int | None = None,
        down_after_s: float | None = None,
    ) -> None:
        if not base_urls:
            raise MlfilterError("no base URL for the OpenAI-compatible server")
        self.pool = EndpointPool(base_urls)
        self._api_key = api_key
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.down_after_s = DOWN_AFTER_S if down_after_s is None else down_after_s
        self.stats = ClientStats()
        self._rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"OpenAIClient({len(self.pool.endpoints)} endpoint(s), concurrency={self.concurrency})"

    async def __aenter__(self) -> OpenAIClient:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._slots = asyncio.Semaphore(self.concurrency)
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, path: str, body: bytes, read: Callable[[Any], Any] = lambda data: data) -> Any:
        """POST ``body`` (JSON bytes) to ``<base URL><path>``; ``read`` turns the reply JSON into a result.

        Retries 429/5xx/timeouts/connection errors/malformed replies (``read`` raising ``ValueError``,
        ``KeyError``, ``IndexError`` or ``TypeError`` counts as malformed) up to ``max_retries`` times,
        then raises :class:`RequestFailed`. Other 4xx fail at once (kind ``context_length`` when the
        server says the prompt is too long, else ``http_<status>``); 401/403/404 raise
        :class:`EndpointError`, since every other request would fail the same way. Raises
        :class:`EndpointsDown` once every base URL has refused connections for ``down_after_s`` seconds.
        """
        return await self.request("POST", path, body, read)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        read: Callable[[Any], Any] = lambda data: data,
        *,
        content_type: str = "application/json",
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> Any:
        """Any request, retried as :meth:`post` is; ``decode`` turns the reply bytes into what ``read`` gets
        (``orjson.loads`` by default; ``bytes`` for a file download)."""
        assert self._session is not None and self._slots is not None, "use as `async with OpenAIClient(...)`"
        call = _Call(method, path, body, content_type, decode)
        attempt = 0
        reached = False
        while True:
            async with self._slots:
                try:
                    outcome = await self._attempt(call, read)
                except RequestFailed:
                    self.stats.sent += 1
                    raise
            reached = reached or not isinstance(outcome, _Retry) or outcome.reached
            if not isinstance(outcome, _Retry):
                self.stats.sent += 1
                return outcome
            kind, retry_after = outcome.kind, outcome.retry_after
            if not outcome.reached and self.pool.all_down(self.down_after_s):
                urls = ", ".join(display_url(e.url) for e in self.pool.endpoints)
                raise EndpointsDown(
                    f"every endpoint refused connections for {self.down_after_s:.0f} s or more ({urls}); "
                    "stopped sending. Finished requests are saved in the request cache: start the server(s) and "
                    "rerun to send only the rest"
                )
            if attempt >= self.max_retries:
                self.stats.failures[kind] += 1
                self.stats.sent += reached
                raise RequestFailed(kind, f"after {attempt + 1} attempt(s)")
            self.stats.retries[kind] += 1
            delay = self._delay(attempt, retry_after)
            log.debug("attempt %d failed (%s); retrying in %.2f s", attempt + 1, kind, delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def _attempt(self, call: _Call, read: Callable[[Any], Any]) -> Any:
        """One try on the best endpoint: the result, or a :class:`_Retry` saying why it failed."""
        assert self._session is not None
        endpoint = self.pool.acquire()
        self.stats.attempts += 1
        started = time.perf_counter()
        connection_failed = False
        headers = {"Content-Type": call.content_type}
        try:
            async with self._session.request(
                call.method, endpoint.url + call.path, data=call.body, headers=headers
            ) as response:
                payload = await response.read()
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            self._note_error("timeout", f"no reply within {self.timeout_s} s")
            return _Retry("timeout")
        except aiohttp.ClientConnectorError as exc:
            connection_failed = True
            self._note_error("connection", f"cannot connect ({type(exc).__name__})")
            return _Retry("connection", reached=False)
        except (aiohttp.ClientError, OSError) as exc:
            self._note_error("connection", f"connection lost ({type(exc).__name__})")
            return _Retry("connection")
        finally:
            self.pool.release(endpoint, connection_failed=connection_failed)
        kind = self._classify(status, payload, endpoint)
        if kind is not None:
            return _Retry(kind, retry_after)
        try:
            result = read(call.decode(payload))
        except (orjson.JSONDecodeError, ValueError, KeyError, IndexError, TypeError) as exc:
            self._note_error("bad_response", f"{type(exc).__name__}: {payload[:200].decode('utf-8', 'replace')}")
            return _Retry("bad_response")
        self.stats.latencies.append(time.perf_counter() - started)
        return result

    def _classify(self, status: int, payload: bytes, endpoint: Endpoint) -> str | None:
        """None for a 200; the retry kind for retryable statuses; raises for the rest."""
        if status == 200:
            return None
        text = self._mask(error_text(payload))
        if status in RETRYABLE_STATUS or status >= 500:
            self._note_error(f"http_{status}", text)
            return f"http_{status}"
        if status in FATAL_STATUS:
            raise EndpointError(f"{display_url(endpoint.url)} answered HTTP {status} ({FATAL_STATUS[status]}): {text}")
        kind = "context_length" if status in (400, 413, 422) and _CONTEXT_LENGTH.search(text) else f"http_{status}"
        self._note_error(kind, text)
        self.stats.failures[kind] += 1
        raise RequestFailed(kind, text)

    def _mask(self, text: str) -> str:
        return redact(text, [self._api_key])

    def _note_error(self, kind: str, text: str) -> None:
        """Keep the first few distinct error texts per kind, logging each when first seen."""
        texts = self.stats.errors.setdefault(kind, [])
        if len(texts) < ERROR_TEXTS_PER_KIND and text not in texts:
            texts.append(text)
            log.warning("request failed (%s): %s", kind, text)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter; a ``Retry-After`` from the server is honoured (plus jitter)."""
        if retry_after is not None:
            return retry_after * self._rng.uniform(1.0, 1.1)
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * (2**attempt))
        return ceiling * self._rng.uniform(0.5, 1.0)


class OpenAIBackend:
    """Payloads and reply reading for the chat-completions and completions APIs."""

    kind = "openai"

    def __init__(self, params: AnnotatorParams, tokenizer: Any | None = None) -> None:
        self.params = params
        self.tokenizer = tokenizer
        if params.api == "completions" and tokenizer is None:
            raise MlfilterError(
                "the completions API applies the chat template locally and needs a tokenizer: "
                "set `tokenizer` (a hub id or a local folder) or a `model` that is one"
            )
        self.path = "/chat/completions" if params.api == "chat" else "/completions"

    def prompt_text(self, messages: list[dict[str, str]], prefix: str | None) -> str:
        """The completions prompt: the chat template applied locally, then the forced reply prefix."""
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=self.params.add_generation_prompt
        )
        return text + (prefix or "")

    def prepare(
        self, messages: list[dict[str, str]], prefix: str | None, generation: int, labels: Sequence[str] = ()
    ) -> PreparedRequest:
        """The request for one generation; ``prefix`` is the forced start of the reply, if any.

        ``labels`` are not sent in logprobs mode (the reply's top log-probabilities are kept whole and read
        at assembly); in json mode they become the schema's ``score`` enum. With ``sampling.seed`` the
        request carries its own seed (:func:`~mlfilter.annotation.backends.base.request_seed`).
        """
        p = self.params
        sampling = p.sampling
        logprobs = p.score_mode == "logprobs"
        body: dict[str, Any] = {
            "model": p.model,
            "max_tokens": 1 if logprobs else sampling.max_new_tokens + sampling.max_reasoning_tokens,
            "temperature": 0.0 if logprobs else sampling.temperature,
            "top_p": 1.0 if logprobs else sampling.top_p,
        }
        if sampling.reasoning_effort:
            body["reasoning_effort"] = sampling.reasoning_effort
        if p.score_mode == "json":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "score", "strict": True, "schema": score_schema(labels)},
            }
        if p.api == "chat":
            if prefix:
                body["messages"] = [*messages, {"role": "assistant", "content": prefix}]
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
            else:
                body["messages"] = messages
            if logprobs:
                body["logprobs"] = True
                body["top_logprobs"] = p.top_logprobs
            prompt_chars = sum(len(m["content"]) for m in body["messages"])
        else:
            body["prompt"] = self.prompt_text(messages, prefix)
            if logprobs:
                body["logprobs"] = p.top_logprobs
            prompt_chars = len(body["prompt"])
        body.update(p.extra_body)
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        if sampling.seed is not None:
            body["seed"] = request_seed(sampling.seed, canonical, generation)
            canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return PreparedRequest(request_key(self.kind, generation, canonical), canonical, prompt_chars)

    def read(self, data: Any) -> dict[str, Any]:
        """A cache result from a reply.

        Keys: ``text`` (the final answer; ``""`` when none), ``reasoning`` (a reasoning model's
        ``reasoning_content`` / ``reasoning``, at most ``REASONING_CHARS`` characters: start and end),
        ``refusal``, ``top_logprobs`` of the first token (logprobs mode: ``[[token, logprob], …]``, ``[]``
        when the server sent none), ``prompt_tokens``, ``completion_tokens``, ``reasoning_tokens`` (the
        server's counts), ``finish_reason``.
        """
        choice = data["choices"][0]
        reasoning = refusal = ""
        top = None
        if self.params.api == "chat":
            message = choice["message"]
            text = message.get("content") or ""
            reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
            refusal = message.get("refusal") or ""
            if self.params.score_mode == "logprobs":
                content = (choice.get("logprobs") or {}).get("content") or []
                first = content[0].get("top_logprobs") or [] if content else []
                top = [[t["token"], float(t["logprob"])] for t in first]
        else:
            text = choice.get("text") or ""
            if self.params.score_mode == "logprobs":
                tops = (choice.get("logprobs") or {}).get("top_logprobs") or []
                top = [[token, float(lp)] for token, lp in tops[0].items()] if tops and tops[0] else []
        if not isinstance(text, str) or not isinstance(reasoning, str):
            raise TypeError("reply text is not a string")
        if len(reasoning) > REASONING_CHARS:
            half = REASONING_CHARS // 2
            reasoning = f"{reasoning[:half]} … {reasoning[-half:]}"
        usage = data.get("usage") or {}
        details = usage.get("completion_tokens_details") or {}
        return {
            "text": text,
            "reasoning": reasoning,
            "refusal": refusal if isinstance(refusal, str) else str(refusal),
            "top_logprobs": top,
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
            "reasoning_tokens": int(details.get("reasoning_tokens") or 0),
            "finish_reason": choice.get("finish_reason"),
        }
