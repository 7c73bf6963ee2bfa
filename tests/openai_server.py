"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions and completions APIs.

For tests and benchmarks of anything that talks to an LLM server. Replies are deterministic: the
score a prompt gets is a hash of its text, so two servers (or two runs) answer the same prompt the
same way. Faults can be injected on demand.

In a test (the server runs in a background thread)::

    from tests.openai_server import FakeOpenAIServer, Faults

    with FakeOpenAIServer(latency=0.01, faults=Faults(rate=0.3)) as server:
        os.environ["OPENAI_BASE_URL"] = server.url          # http://127.0.0.1:<port>/v1
        ...                                                  # run the client
        server.request_count                                # HTTP requests received
        server.counts()                                     # Counter: body digest → requests
        server.fault_counts()                               # Counter: fault kind → injected

As a process (benchmarks: the client's CPU time is then measured on its own)::

    python -m tests.openai_server --latency 0.2            # prints the base URL, serves until killed

Replies: for a prompt that names a score format it knows (``Educational score:`` → labels 0-5,
``Adult content score:`` → labels 0-3; pass ``formats`` for others), a short text ending in
``<format> <score>``; when the prompt (or the final assistant message, as with vLLM's
``continue_final_message``) already ends with that format, only the score. With ``logprobs``
(chat: ``logprobs: true, top_logprobs: k``; completions: ``logprobs: k``) the first output token's
top log-probabilities spread over the labels, peaking at the score.

With ``response_format: {type: json_schema}`` the reply is JSON, ``{"score": <score>}``.

Faults (``Faults.kinds``): ``http_500``; ``http_429`` with ``Retry-After``; ``slow`` (the reply
takes ``slow_s``, longer than the client's timeout); ``drop`` (the connection is closed without a
reply); ``malformed`` (a 200 whose body is broken JSON); ``no_score`` (a reply without any score,
or log-probabilities without a label token); ``out_of_range`` (a score outside the labels). The
first five are transient and drawn at random per HTTP request (``seed``); the others are content
faults, decided by a hash of the request body, so a retry or a rerun gets the same reply. These
seven are the default ``kinds``; the content faults of real servers are opt-in:

- ``length``: the reply stops mid-sentence after a score, ``finish_reason: length``;
- ``reasoning``: a reasoning model's reply, ``reasoning_content`` then the answer, reasoning tokens
  counted in ``usage.completion_tokens_details``;
- ``reasoning_only``: the thinking used the whole budget: ``content: null``, ``finish_reason: length``;
- ``new_turn``: the final assistant message is not continued: a new turn starting with a word
  ("Educational"), the label tokens far down the top log-probabilities (mass ≈ 2e-5);
- ``low_mass``: the first token is a label, but the labels hold only ~30% of the probability;
- ``empty_top_logprobs``: logprobs asked, ``top_logprobs: []`` returned;
- ``empty_reply``: ``content: ""``, ``finish_reason: stop``;
- ``refusal``: ``content: null`` with a ``refusal`` (OpenAI);
- ``context_length``: HTTP 400 with vLLM's "maximum context length" message;
- ``schema_break``: json mode, a reply that breaks the schema (``{"rating": "high"}``).

Server-wide behaviours: ``echo_auth`` answers every request with a 401 whose body echoes the
``Authorization`` header (some servers do); ``reject_schema`` answers a request with a JSON schema in
``response_format`` with a 400, as servers without structured output do; ``stop_after`` stops serving
(connections refused from then on) once that many requests have arrived, as a killed server does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import random
import socket
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

TRANSIENT_FAULTS = ("http_500", "http_429", "slow", "drop", "malformed")
CONTENT_FAULTS = ("no_score", "out_of_range")
DEFAULT_FAULTS = TRANSIENT_FAULTS + CONTENT_FAULTS
REAL_SERVER_FAULTS = (
    "length",
    "reasoning",
    "reasoning_only",
    "new_turn",
    "low_mass",
    "empty_top_logprobs",
    "empty_reply",
    "refusal",
    "context_length",
    "schema_break",
)
ALL_FAULTS = DEFAULT_FAULTS + REAL_SERVER_FAULTS
CONTEXT_LENGTH_MESSAGE = (
    "This model's maximum context length is 2048 tokens. However, you requested 2112 tokens (1600 in the "
    "messages, 512 in the completion). Please reduce the length of the messages or completion."
)
DEFAULT_FORMATS: dict[str, int] = {"Educational score:": 6, "Adult content score:": 4}


def body_digest(body: bytes) -> str:
    """How the server identifies a request: SHA-256 of its exact body bytes."""
    return hashlib.sha256(body).hexdigest()


def _unit(text: str, salt: str) -> float:
    """A number in [0, 1) that depends only on ``text`` and ``salt``."""
    return int(hashlib.sha256(f"{salt}\x00{text}".encode()).hexdigest()[:12], 16) / 16**12


@dataclass
class Faults:
    """Which faults to inject and how often (``rate``: the share of requests that get one)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = DEFAULT_FAULTS
    retry_after: str = "0.05"
    slow_s: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(ALL_FAULTS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {ALL_FAULTS}")


@dataclass
class FakeOpenAIServer:
    """The server; a context manager that runs it in a background thread on a free port."""

    latency: float = 0.0
    faults: Faults = field(default_factory=Faults)
    formats: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_FORMATS))
    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    echo_auth: bool = False
    reject_schema: bool = False
    stop_after: int | None = None

    def __post_init__(self) -> None:
        self.request_count = 0
        self._counts: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- public API ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:<port>/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def counts(self) -> Counter[str]:
        """Requests received per body digest (see :func:`body_digest`), including retries."""
        with self._lock:
            return Counter(self._counts)

    def fault_counts(self) -> Counter[str]:
        """Faults injected so far, per kind."""
        with self._lock:
            return Counter(self._faults)

    def reset_counts(self) -> None:
        """Forget the request and fault counts."""
        with self._lock:
            self.request_count = 0
            self._counts.clear()
            self._faults.clear()

    def expected_score(self, prompt_text: str, num_labels: int) -> int:
        """The score this server gives ``prompt_text`` when no content fault hits it."""
        return int(_unit(prompt_text, "score") * num_labels)

    def content_fault(self, body: bytes) -> str | None:
        """The content fault (``no_score``, ``length``, …) this server gives this body, if any."""
        kinds = [k for k in self.faults.kinds if k not in TRANSIENT_FAULTS]
        if not kinds or self.faults.rate <= 0:
            return None
        share = self.faults.rate * len(kinds) / len(self.faults.kinds)
        u = _unit(body.decode("utf-8", "replace"), "content-fault")
        return kinds[int(u / share * len(kinds))] if u < share else None

    def start(self) -> FakeOpenAIServer:
        """Start serving in a background thread; returns once the port is bound."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve_in_thread, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        """Stop the server and its thread (a server stopped by ``stop_after`` only joins its thread)."""
        if self._loop is not None and self._thread is not None:
            if self._loop.is_closed():
                self._thread.join(10)
                self._thread = None
                return
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)
        return app

    async def _open(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(4096)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=4096).start()

    def _serve_in_thread(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._open())
        ready.set()
        try:
            self._loop.run_forever()
        finally:
            assert self._runner is not None
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted, after printing the base URL on one line."""
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._open())
        print(self.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            self._loop.run_forever()

    # -- replies ---------------------------------------------------------------------------------

    def _draw_transient(self) -> str | None:
        kinds = [k for k in self.faults.kinds if k in TRANSIENT_FAULTS]
        if not kinds or self.faults.rate <= 0:
            return None
        share = self.faults.rate * len(kinds) / len(self.faults.kinds)
        with self._lock:
            u = self._rng.random()
            kind = self._rng.choice(kinds)
        return kind if u < share else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        digest = body_digest(body)
        with self._lock:
            self.request_count += 1
            self._counts[digest] += 1
            stopping = self.stop_after is not None and self.request_count >= self.stop_after
        if stopping:
            assert self._loop is not None and request.transport is not None
            if self.request_count == self.stop_after:
                self._loop.call_soon(self._loop.stop)
            request.transport.abort()
            return web.Response(status=500)
        if self.echo_auth:
            header = request.headers.get("Authorization", "")
            return web.json_response({"error": {"message": f"invalid credentials: {header}"}}, status=401)
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "invalid API key"}}, status=401)
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._draw_transient()
        if fault:
            with self._lock:
                self._faults[fault] += 1
            response = await self._transient(fault, request)
            if response is not None:
                return response
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        schema = (payload.get("response_format") or {}).get("type") == "json_schema"
        if schema and self.reject_schema:
            message = "response_format of type json_schema is not supported by this server"
            return web.json_response({"error": {"message": message, "type": "BadRequestError"}}, status=400)
        content_fault = self.content_fault(body)
        if content_fault:
            with self._lock:
                self._faults[content_fault] += 1
        if content_fault == "context_length":
            error = {"message": CONTEXT_LENGTH_MESSAGE, "type": "BadRequestError", "code": 400}
            return web.json_response({"object": "error", **error}, status=400)
        chat = request.path.endswith("/chat/completions")
        reply = self._reply(payload, chat, content_fault)
        return web.Response(body=orjson.dumps(reply), content_type="application/json")

    async def _transient(self, fault: str, request: web.Request) -> web.StreamResponse | None:
        if fault == "http_500":
            return web.json_response({"error": {"message": "injected server error"}}, status=500)
        if fault == "http_429":
            headers = {"Retry-After": self.faults.retry_after}
            return web.json_response({"error": {"message": "injected rate limit"}}, status=429, headers=headers)
        if fault == "malformed":
            return web.Response(body=b'{"choices": [{"message": {"content": "Educ', content_type="application/json")
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        await asyncio.sleep(self.faults.slow_s)
        return None

    def _reply(self, payload: dict[str, Any], chat: bool, fault: str | None) -> dict[str, Any]:
        if chat:
            messages = payload.get("messages") or []
            prompt = "\n".join(str(m.get("content", "")) for m in messages)
            continuing = bool(messages) and messages[-1].get("role") == "assistant"
            tail = str(messages[-1].get("content", "")) if continuing else ""
            top_k = int(payload.get("top_logprobs") or 0) if payload.get("logprobs") else 0
        else:
            prompt = str(payload.get("prompt", ""))
            tail = prompt
            top_k = int(payload.get("logprobs") or 0)
        fmt = next((f for f in self.formats if f in prompt), None)
        num_labels = self.formats.get(fmt, 6) if fmt else 6
        score = self.expected_score(prompt, num_labels)
        prefilled = fmt is not None and tail.rstrip().endswith(fmt) and fault != "new_turn"
        json_mode = (payload.get("response_format") or {}).get("type") == "json_schema"
        if fault == "out_of_range":
            score = num_labels + 3
        finish = "stop"
        if json_mode:
            text = '{"rating": "high"}' if fault == "schema_break" else orjson.dumps({"score": score}).decode()
        elif fault == "no_score" or fmt is None:
            text = "I am not able to rate this document."
        elif prefilled:
            text = str(score)
        else:
            text = f"The document was read with care.\n{fmt} {score}"
        if fault == "length":
            text, finish = f"It would deserve {fmt} {score}, but this page is mostly navigation links and", "length"
        logprobs = self._logprobs(score, num_labels, top_k, fault) if top_k else None
        if logprobs:
            text = logprobs[0][0]
        message: dict[str, Any] = {"role": "assistant", "content": text}
        reasoning_tokens = 0
        if fault in ("reasoning", "reasoning_only"):
            thought = "Let me think about the document step by step. " * 40
            message["reasoning_content"] = thought
            reasoning_tokens = len(thought) // 4
            if fault == "reasoning_only":
                message["content"], finish, text = None, "length", ""
        elif fault in ("empty_reply", "refusal"):
            message["content"], text = ("", "") if fault == "empty_reply" else (None, "")
            if fault == "refusal":
                message["refusal"] = "I'm sorry, I can't help with that."
        prompt_tokens = max(1, len(prompt) // 4)
        completion_tokens = reasoning_tokens + (1 if top_k else max(1, len(text) // 4))
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = message
            if logprobs is not None:
                top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in logprobs]
                first = logprobs[0] if logprobs else (text, 0.0)
                choice["logprobs"] = {"content": [{"token": text, "logprob": first[1], "top_logprobs": top}]}
        else:
            choice["text"] = text
            if logprobs is not None:
                choice["logprobs"] = {
                    "tokens": [text],
                    "token_logprobs": [logprobs[0][1] if logprobs else 0.0],
                    "top_logprobs": [dict(logprobs)],
                }
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
        return {
            "id": "cmpl-fake",
            "object": "chat.completion" if chat else "text_completion",
            "model": payload.get("model", "fake"),
            "choices": [choice],
            "usage": usage,
        }

    @staticmethod
    def _logprobs(score: int, num_labels: int, top_k: int, fault: str | None) -> list[tuple[str, float]]:
        """Top tokens, most likely first: labels peaking at ``score``, plus two non-label tokens (or what
        ``fault`` asks for: none, no label, labels far down the list, labels with little mass)."""
        if fault == "empty_top_logprobs":
            return []
        if fault == "no_score":
            weights = {"The": 0.6, "I": 0.3, "A": 0.1}
        elif fault == "out_of_range":
            weights = {str(num_labels + 3): 0.7, str(num_labels + 5): 0.3}
        elif fault == "new_turn":
            weights = {"Educational": 0.9, "The": 0.05, "This": 0.03, "**": 0.02 - 2e-5}
            weights.update({str(label): 2e-5 / num_labels for label in range(num_labels)})
        elif fault == "low_mass":
            weights = {str(score): 0.3, "The": 0.25, "This": 0.25, "I": 0.2}
        else:
            weights = {str(label): 2.0 ** -abs(label - score) for label in range(num_labels)}
            weights.update({"The": 0.02, "\n": 0.01})
        total = sum(weights.values())
        ranked = sorted(weights.items(), key=lambda item: -item[1])[:top_k]
        return [(token, math.log(w / total)) for token, w in ranked]


def main(argv: list[str] | None = None) -> None:
    """Serve from the command line (for benchmarks); prints the base URL, then serves until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that get a fault")
    args = parser.parse_args(argv)
    FakeOpenAIServer(latency=args.latency, faults=Faults(rate=args.fault_rate), port=args.port).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
