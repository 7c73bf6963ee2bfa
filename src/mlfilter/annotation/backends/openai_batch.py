"""The ``openai_batch`` backend: the requests of the ``openai`` backend, sent through the OpenAI Batch API.

The requests and their cache keys are the live backend's (:class:`OpenAIBackend`), so live and batch
runs share the request cache. A run writes the missing requests into JSONL request files (at most
``batch_max_requests`` requests and ``batch_max_bytes`` bytes each; ``custom_id`` is the cache key),
uploads each (``POST /v1/files``), creates a batch for it (``POST /v1/batches``), polls it
(``GET /v1/batches/{id}``), downloads its output and error files (``GET /v1/files/{id}/content``) and
commits every result to the request cache. Requests a batch left undone (expired, cancelled) or that
failed in a retryable way (HTTP 429 or 5xx in the error file) go into a new batch, up to
``max_retries`` rounds; the others count as failed under a named kind.

**Kill -9.** Every step persists what it learnt before going on, in a state file written atomically
(``<cache folder>/batches/<annotator>/state.json``, next to the request files): a written file, its
upload's file id, the batch id, the job's completion (only after its results committed). A rerun
resumes each unfinished job where it stopped. Between the upload and saving its id, or between
creating the batch and saving its id, a kill leaves work the server knows and the state does not:
before uploading, the server's files are searched for one of the same name and size (names hold the
SHA-256 of the contents), and before creating a batch, the server's batches for the same input file,
so nothing is uploaded or run twice.

Reference: https://platform.openai.com/docs/guides/batch and https://platform.openai.com/docs/api-reference/batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mlfilter.annotation.backends.base import PreparedRequest
from mlfilter.annotation.backends.openai_client import RETRYABLE_STATUS, OpenAIBackend, OpenAIClient
from mlfilter.annotation.params import AnnotatorParams
from mlfilter.atomic import atomic_open, write_json
from mlfilter.errors import MlfilterError

log = logging.getLogger(__name__)

#: Batch statuses after which nothing changes any more.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: Statuses of a batch that will give no more results: an earlier batch in one of them is not reused.
_SPENT = frozenset({"failed", "expired", "cancelling", "cancelled"})
#: Job stages, in order; each is saved before the next begins.
WRITTEN, UPLOADED, SUBMITTED, DONE = "written", "uploaded", "submitted", "done"
_STATE_VERSION = 1


def endpoint_url(backend: OpenAIBackend) -> str:
    """The Batch API's name of the live backend's endpoint: ``/v1/chat/completions`` or ``/v1/completions``."""
    return "/v1" + backend.path


def request_line(request: PreparedRequest, url: str) -> bytes:
    """One line of a request file: ``custom_id`` (the cache key), method, URL and the exact live body."""
    head = orjson.dumps({"custom_id": request.key, "method": "POST", "url": url})
    return head[:-1] + b',"body":' + request.payload + b"}\n"


def split_requests(
    requests: Sequence[PreparedRequest], url: str, max_requests: int, max_bytes: int
) -> list[list[bytes]]:
    """Request lines grouped into files of at most ``max_requests`` lines and ``max_bytes`` bytes, in order.

    Raises:
        MlfilterError: one request alone is larger than ``max_bytes``.
    """
    files: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for request in requests:
        line = request_line(request, url)
        if len(line) > max_bytes:
            raise MlfilterError(f"request {request.key}: {len(line)} bytes, more than batch_max_bytes {max_bytes}")
        if current and (len(current) >= max_requests or size + len(line) > max_bytes):
            files.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        files.append(current)
    return files


@dataclass
class Job:
    """One request file and what the server knows of it; ``stage`` is one of written/uploaded/submitted/done."""

    file: str
    requests: int
    bytes: int
    stage: str = WRITTEN
    input_file_id: str | None = None
    batch_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The job as the state file holds it."""
        return dict(self.__dict__)


@dataclass
class Outcome:
    """What the batches gave back: results by key, failures by key (kind), keys worth another round."""

    results: list[tuple[str, bytes]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retry: dict[str, str] = field(default_factory=dict)


class BatchState:
    """The jobs of one annotator, saved atomically to ``<folder>/state.json`` after every change."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "state.json"
        self.jobs: list[Job] = []
        if self.path.exists():
            try:
                data = orjson.loads(self.path.read_bytes())
                self.jobs = [Job(**job) for job in data["jobs"]]
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise MlfilterError(
                    f"{self.path}: unreadable batch state ({exc}); move it away to start over"
                ) from None

    def save(self) -> None:
        """Write the state atomically."""
        write_json(self.path, {"version": _STATE_VERSION, "jobs": [job.as_dict() for job in self.jobs]})

    def pending(self) -> list[Job]:
        """Jobs not finished yet."""
        return [job for job in self.jobs if job.stage != DONE]

    def keys(self, job: Job) -> list[str]:
        """The cache keys (``custom_id``) in a job's request file."""
        with open(self.folder / job.file, "rb") as handle:
            return [orjson.loads(line)["custom_id"] for line in handle if line.strip()]

    def add(self, lines: list[bytes]) -> Job:
        """Write one request file atomically and record it as a new job."""
        data = b"".join(lines)
        name = f"requests-{hashlib.sha256(data).hexdigest()[:32]}.jsonl"
        with atomic_open(self.folder / name, "wb") as handle:
            handle.write(data)
        job = Job(name, len(lines), len(data))
        self.jobs.append(job)
        self.save()
        return job

    def finish(self, job: Job) -> None:
        """Mark a job done (its results are committed) and drop its request file."""
        job.stage = DONE
        self.save()
        (self.folder / job.file).unlink(missing_ok=True)


def _multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with ``purpose=batch`` and the file: ``(body, content type)``."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/jsonl\r\n\r\n".encode(),
        data,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class BatchRunner:
    """Sends requests through the Batch API and hands each result to ``commit`` as it is read.

    ``commit(items)`` stores ``[(key, serialized result)]`` in the request cache and returns once
    committed; a job is marked done only after that.
    """

    def __init__(
        self,
        params: AnnotatorParams,
        backend: OpenAIBackend,
        client: OpenAIClient,
        folder: str | os.PathLike[str],
        commit: Callable[[list[tuple[str, bytes]]], None],
    ) -> None:
        self.params = params
        self.backend = backend
        self.client = client
        self.url = endpoint_url(backend)
        self.state = BatchState(Path(folder))
        self.commit = commit
        self.sent = 0
        self.rounds = 0
        self.batches: Counter[str] = Counter()
        self.resent: Counter[str] = Counter()

    def split(self, requests: Sequence[PreparedRequest]) -> list[list[bytes]]:
        """The request files ``requests`` make under this annotator's limits."""
        return split_requests(requests, self.url, self.params.batch_max_requests, self.params.batch_max_bytes)

    async def run(self, requests: Sequence[PreparedRequest]) -> dict[str, str]:
        """Send ``requests`` (those missing from the cache) and return the keys that failed for good → kind."""
        self.state.folder.mkdir(parents=True, exist_ok=True)
        resumed = self.state.pending()
        covered = {key for job in resumed for key in self.state.keys(job)}
        if resumed:
            log.info("resuming %d unfinished batch job(s) (%d requests)", len(resumed), len(covered))
        todo = [r for r in requests if r.key not in covered]
        jobs = resumed
        failed: dict[str, str] = {}
        by_key = {r.key: r for r in requests}
        while True:
            jobs = jobs + [self.state.add(lines) for lines in self.split(todo)]
            if not jobs:
                return failed
            self.sent += sum(job.requests for job in jobs)
            outcomes = await asyncio.gather(*(self._complete(job) for job in jobs))
            self.rounds += 1
            retry: dict[str, str] = {}
            for outcome in outcomes:
                failed.update(outcome.failed)
                retry.update(outcome.retry)
            retry = {key: kind for key, kind in retry.items() if key in by_key}
            if not retry or self.rounds > self.params.max_retries:
                failed.update(retry)
                return failed
            log.info("batch round %d left %d request(s) undone; sending them again", self.rounds, len(retry))
            self.resent.update(retry.values())
            todo = [by_key[key] for key in retry]
            jobs = []

    async def _complete(self, job: Job) -> Outcome:
        """Upload, create, poll and read one job, saving each step; returns what it left undone."""
        if job.stage == WRITTEN:
            job.input_file_id = await self._upload(job)
            job.stage = UPLOADED
            self.state.save()
        if job.stage == UPLOADED:
            job.batch_id = await self._create(job)
            job.stage = SUBMITTED
            self.state.save()
        batch = await self._poll(job)
        outcome = await self._read(job, batch)
        self.commit(outcome.results)
        self.state.finish(job)
        return outcome

    async def _upload(self, job: Job) -> str:
        """The id of the job's file on the server: an earlier upload of it, else a new one."""
        async for item in self._list("/files?purpose=batch"):
            if item.get("filename") == job.file and item.get("bytes") == job.bytes:
                log.info("%s: already uploaded as %s", job.file, item["id"])
                return str(item["id"])
        data = (self.state.folder / job.file).read_bytes()
        body, content_type = _multipart(job.file, data)
        reply = await self.client.request("POST", "/files", body, content_type=content_type)
        log.info("%s: uploaded as %s (%d requests)", job.file, reply["id"], job.requests)
        return str(reply["id"])

    async def _create(self, job: Job) -> str:
        """The id of the batch of the job's file: an earlier one that may still give results, else a new one."""
        async for item in self._list("/batches?limit=100"):
            if item.get("input_file_id") == job.input_file_id and item.get("status") not in _SPENT:
                log.info("%s: batch %s already exists", job.file, item["id"])
                return str(item["id"])
        body = {
            "input_file_id": job.input_file_id,
            "endpoint": self.url,
            "completion_window": self.params.completion_window,
            "metadata": {"mlfilter_file": job.file},
        }
        reply = await self.client.request("POST", "/batches", orjson.dumps(body))
        log.info("%s: batch %s created", job.file, reply["id"])
        return str(reply["id"])

    async def _list(self, path: str) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paginated list endpoint (``data``, ``has_more``, ``after``)."""
        after = None
        while True:
            separator = "&" if "?" in path else "?"
            page = await self.client.request("GET", path + (f"{separator}after={after}" if after else ""))
            items = page.get("data") or []
            for item in items:
                yield item
            if not page.get("has_more") or not items:
                return
            after = items[-1]["id"]

    async def _poll(self, job: Job) -> dict[str, Any]:
        """The batch once it reached a terminal status."""
        while True:
            batch = await self.client.request("GET", f"/batches/{job.batch_id}")
            status = batch.get("status")
            if status in TERMINAL:
                self.batches[status] += 1
                counts = batch.get("request_counts") or {}
                log.info("batch %s: %s (%s)", job.batch_id, status, counts)
                if status == "failed":
                    errors = [e.get("message") for e in ((batch.get("errors") or {}).get("data") or [])]
                    log.warning("batch %s of %s failed: %s", job.batch_id, job.file, "; ".join(map(str, errors[:5])))
                return batch
            await asyncio.sleep(self.params.poll_interval_s)

    async def _download(self, file_id: str | None) -> list[dict[str, Any]]:
        if not file_id:
            return []
        data = await self.client.request("GET", f"/files/{file_id}/content", decode=bytes)
        lines = []
        for number, line in enumerate(data.splitlines(), 1):
            if line.strip():
                try:
                    lines.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise MlfilterError(f"batch file {file_id}, line {number}: not JSON: {exc}") from None
        return lines

    async def _read(self, job: Job, batch: dict[str, Any]) -> Outcome:
        """Results, failures and retries of a finished batch from its output and error files."""
        outcome = Outcome()
        seen: set[str] = set()
        for line in [
            *await self._download(batch.get("output_file_id")),
            *await self._download(batch.get("error_file_id")),
        ]:
            key = line.get("custom_id")
            if not isinstance(key, str) or key in seen:
                continue
            seen.add(key)
            self._read_line(key, line, outcome)
        status = batch.get("status")
        undone = "batch_failed" if status == "failed" else f"batch_{status}"
        for key in self.state.keys(job):
            if key not in seen:
                target = outcome.failed if status in ("failed", "completed") else outcome.retry
                target[key] = undone if status != "completed" else "batch_missing_result"
        return outcome

    def _read_line(self, key: str, line: dict[str, Any], outcome: Outcome) -> None:
        response = line.get("response") or {}
        status = response.get("status_code")
        if status == 200:
            try:
                result = self.backend.read(response.get("body"))
            except (ValueError, KeyError, IndexError, TypeError):
                outcome.failed[key] = "bad_response"
                return
            outcome.results.append((key, orjson.dumps(result)))
            return
        if isinstance(status, int):
            target = outcome.retry if status in RETRYABLE_STATUS or status >= 500 else outcome.failed
            target[key] = f"http_{status}"
            return
        error = line.get("error") or {}
        code = error.get("code") if isinstance(error, dict) else None
        outcome.retry[key] = f"batch_error_{code}" if code else "batch_error"


def state_folder(cache_file: str | os.PathLike[str], annotator: str) -> Path:
    """Where an annotator's request files and batch state live: ``<cache folder>/batches/<annotator>``."""
    return Path(cache_file).parent / "batches" / annotator


def batch_plan(files: Iterable[list[bytes]]) -> list[dict[str, int]]:
    """Requests and bytes of each request file (for the dry run)."""
    return [{"requests": len(lines), "bytes": sum(len(line) for line in lines)} for lines in files]
