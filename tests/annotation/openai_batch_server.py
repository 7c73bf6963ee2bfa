"""A real HTTP server on 127.0.0.1 that speaks the OpenAI Files and Batch APIs, with faults on demand.

It extends :class:`tests.openai_server.FakeOpenAIServer` (whose chat-completions endpoint stays live):
``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files``, ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches`` and ``GET /v1/batches/{id}``. A batch answers each line
exactly as the live endpoint answers the same body, so live and batch replies agree. Its status moves
``validating`` → ``in_progress`` → terminal over successive ``GET``s.

Faults: ``expire_batches`` — the first N batches expire with only ``expire_done`` of their requests
done; ``error_rate``/``error_status`` — that share of requests (by a hash of ``custom_id``) lands in
the error file with that HTTP status, the first time only when ``error_once``; ``hold`` — ``"upload"``
stores the uploaded file, then holds the reply; ``"create"`` holds ``POST /v1/batches`` before creating
anything, ``"created"`` after creating the batch; ``"poll"`` holds ``GET /v1/batches/{id}``. Held
replies wait until ``release`` is set, then answer 503 (the client is gone by then).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.openai_server import FakeOpenAIServer, _unit


@dataclass
class FakeBatchServer(FakeOpenAIServer):
    """The fake OpenAI server plus the Files and Batch APIs; counts what it receives per endpoint."""

    expire_batches: int = 0
    expire_done: float = 0.5
    error_rate: float = 0.0
    error_status: int = 500
    error_once: bool = True
    hold: str | None = None
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.batch_lines: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self.errored: set[str] = set()

    def _app(self) -> web.Application:
        app = super()._app()
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files", self._list_files)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list_batches)
        app.router.add_get("/v1/batches/{id}", self._get_batch)
        return app

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}-{next(self._ids)}"

    async def _held(self) -> web.Response:
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return web.json_response({"error": {"message": "held reply released"}}, status=503)

    # -- files -----------------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        self.calls["upload"] += 1
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not isinstance(upload, web.FileField):
            return web.json_response({"error": {"message": "expected purpose=batch and a file"}}, status=400)
        data = upload.file.read()
        file_id = self._new_id("file")
        self.contents[file_id] = data
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "filename": upload.filename,
            "purpose": "batch",
        }
        if self.hold == "upload":
            return await self._held()
        return web.json_response(self.files[file_id])

    async def _list_files(self, request: web.Request) -> web.Response:
        self.calls["list_files"] += 1
        purpose = request.query.get("purpose")
        data = [f for f in self.files.values() if purpose is None or f["purpose"] == purpose]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _content(self, request: web.Request) -> web.Response:
        self.calls["download"] += 1
        file_id = request.match_info["id"]
        if file_id not in self.contents:
            return web.json_response({"error": {"message": f"no file {file_id}"}}, status=404)
        return web.Response(body=self.contents[file_id], content_type="application/jsonl")

    # -- batches ---------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        self.calls["create"] += 1
        if self.hold == "create":
            return await self._held()
        body = orjson.loads(await request.read())
        if body.get("input_file_id") not in self.contents:
            return web.json_response({"error": {"message": "unknown input_file_id"}}, status=400)
        batch_id = self._new_id("batch")
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "errors": None,
        }
        if self.hold == "created":
            return await self._held()
        return web.json_response(self.batches[batch_id])

    async def _list_batches(self, request: web.Request) -> web.Response:
        self.calls["list_batches"] += 1
        data = list(reversed(self.batches.values()))
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _get_batch(self, request: web.Request) -> web.Response:
        self.calls["poll"] += 1
        if self.hold == "poll":
            return await self._held()
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        if batch["status"] == "validating":
            batch["status"] = "in_progress"
        elif batch["status"] == "in_progress":
            self._finish(batch)
        return web.json_response(batch)

    def _finish(self, batch: dict[str, Any]) -> None:
        """Answer the batch's requests into an output and an error file; maybe expire it part done."""
        lines = [orjson.loads(line) for line in self.contents[batch["input_file_id"]].splitlines() if line.strip()]
        expiring = sum(b["status"] == "expired" for b in self.batches.values()) < self.expire_batches
        if expiring:
            lines = lines[: int(len(lines) * self.expire_done)]
        output, errors = [], []
        for line in lines:
            key = line["custom_id"]
            self.batch_lines[key] += 1
            if self._errs(key):
                body = {"error": {"message": "injected batch error", "type": "server_error"}}
                response = {"status_code": self.error_status, "request_id": key[:8], "body": body}
                errors.append({"id": f"batch_req_{key[:8]}", "custom_id": key, "response": response, "error": None})
                continue
            raw = orjson.dumps(line["body"])
            reply = self._reply(line["body"], line["url"].endswith("/chat/completions"), self.content_fault(raw))
            response = {"status_code": 200, "request_id": key[:8], "body": reply}
            output.append({"id": f"batch_req_{key[:8]}", "custom_id": key, "response": response, "error": None})
        for name, rows in (("output_file_id", output), ("error_file_id", errors)):
            if rows:
                file_id = self._new_id("file")
                self.contents[file_id] = b"".join(orjson.dumps(row) + b"\n" for row in rows)
                self.files[file_id] = {"id": file_id, "object": "file", "filename": f"{name}.jsonl", "purpose": "x"}
                batch[name] = file_id
        batch["status"] = "expired" if expiring else "completed"
        batch["request_counts"] = {"total": len(lines), "completed": len(output), "failed": len(errors)}

    def _errs(self, key: str) -> bool:
        if _unit(key, "batch-error") >= self.error_rate:
            return False
        if self.error_once and key in self.errored:
            return False
        self.errored.add(key)
        return True
