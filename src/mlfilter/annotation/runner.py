"""Annotating documents: documents × tasks × n generations → requests → request cache → records.

A run makes two passes over the documents. The first plans every request (truncate, render the
prompt in the document's language, hash it), looks it up in the request cache and sends only what is
missing — asynchronously to an OpenAI-compatible server, or in batches through a local model —
committing each result to the cache before it counts as done. The second pass rebuilds the output
from the cache alone, in input order, so a rerun after a kill writes byte-identical files to an
uninterrupted run and never resends a finished request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from tqdm.auto import tqdm

from mlfilter.annotation.backends.base import PreparedRequest
from mlfilter.annotation.cache import BatchedCommitter, RequestCache, cache_path
from mlfilter.annotation.original_format import LabelMapper, OriginalAnnotation, read_original_annotations, to_record
from mlfilter.annotation.params import AnnotatorParams
from mlfilter.annotation.parsing import ScoreParser
from mlfilter.annotation.prompts import LanguageRouter, PromptFile, load_prompt
from mlfilter.annotation.report import AnnotationReport
from mlfilter.annotation.statuses import LOW_LABEL_MASS, NO_LABEL_TOKEN, request_failed
from mlfilter.annotation.truncation import Truncator, load_tokenizer
from mlfilter.annotation.validity import Judge, Verdict
from mlfilter.documents import Document, read_documents
from mlfilter.errors import MlfilterError
from mlfilter.logs import progress, progress_bar, redact
from mlfilter.params import ParamsError, TaskParams
from mlfilter.records import OnError, ShardedWriter, count_records, expand_inputs
from mlfilter.reports import Stopwatch, write_report

log = logging.getLogger(__name__)

_DOCS_PER_CHUNK = 64
_PROGRESS_LOG_S = 30.0
#: How many first replies to a forced reply prefix are checked for a server that ignores the prefix.
PREFIX_PROBE = 16
_SCHEMA_REJECTED = ("response_format", "json_schema", "guided", "grammar", "schema")


class PrefixIgnored(MlfilterError):
    """Most of the first replies show that the server answers a new turn instead of continuing the reply prefix."""


class Interrupted(MlfilterError):
    """The run was interrupted (Ctrl-C); what was finished is in the request cache."""


@dataclass(frozen=True)
class TaskSetup:
    """One task as this annotator scores it: the task, its prompt file, its score parser and its judge."""

    task: TaskParams
    prompt: PromptFile
    parser: ScoreParser
    judge: Judge


@dataclass(frozen=True)
class TaskPlan:
    """The requests for one document and task, and how its prompt was built."""

    task: str
    language: str
    truncated: bool
    prefix: str
    requests: tuple[PreparedRequest, ...]


@dataclass(frozen=True)
class DocumentPlan:
    """Every request one document needs."""

    doc_id: str
    tasks: tuple[TaskPlan, ...]

    def requests(self) -> Iterator[PreparedRequest]:
        """All requests of the document, task by task, generation by generation."""
        for task in self.tasks:
            yield from task.requests


def resolve_tasks(params: AnnotatorParams, tasks: Sequence[TaskParams], name: str) -> list[TaskSetup]:
    """The tasks an annotator scores, with their prompts loaded and checked against ``num_targets``."""
    by_name = {task.name: task for task in tasks}
    where = f"annotate.annotators.{name}"
    wanted = list(params.tasks) or list(by_name)
    for task_name in [*wanted, *params.prompts]:
        if task_name not in by_name:
            raise ParamsError(f"{where}: unknown task {task_name!r}; tasks: {', '.join(by_name)}")
    setups = []
    prompt_files = params.prompt_files(tasks)
    for task_name in wanted:
        task = by_name[task_name]
        prompt = load_prompt(prompt_files[task_name])
        prompt.check_labels(task_name, task.num_targets)
        parser = ScoreParser(params.score_pattern or prompt.score_pattern, prompt.labels)
        judge = Judge(
            params.score_mode, parser, min_label_mass=params.min_label_mass, accept_length=params.accept_length
        )
        setups.append(TaskSetup(task, prompt, parser, judge))
    return setups


def base_urls_from_env(params: AnnotatorParams, env: Mapping[str, str]) -> list[str]:
    """The server base URLs (comma- or space-separated) from the annotator's environment variable; may be empty."""
    value = env.get(params.base_url_env, "")
    return [u for u in value.replace(",", " ").split() if u]


def missing_base_url(params: AnnotatorParams, name: str, to_send: int) -> MlfilterError:
    """The error for requests to send with no base URL (a fully cached run needs none)."""
    return MlfilterError(
        f"annotator {name!r}: {to_send} request(s) are not in the cache and environment variable "
        f"{params.base_url_env} is not set; give the server's base URL(s), comma-separated, e.g. "
        "http://gpu-node-1:8000/v1 (in the environment or in .env)"
    )


class PrefixProbe:
    """Watches the first logprobs replies for a server that answers a new turn instead of continuing the
    reply prefix: the generated token is not a label, or the labels hold little probability. When more
    than half of the first ``size`` replies show it, :meth:`observe` raises :class:`PrefixIgnored`."""

    def __init__(self, name: str, size: int = PREFIX_PROBE) -> None:
        self.name = name
        self.size = size
        self.seen = 0
        self.signs: list[Verdict] = []

    @property
    def watching(self) -> bool:
        """True until ``size`` replies have been observed."""
        return self.seen < self.size

    def observe(self, verdict: Verdict, prefix: str) -> None:
        """Count one reply to a request with a forced ``prefix`` (no prefix: nothing to check)."""
        if not self.watching or not prefix:
            return
        self.seen += 1
        if verdict.status in (NO_LABEL_TOKEN, LOW_LABEL_MASS):
            self.signs.append(verdict)
        if self.seen == self.size and len(self.signs) * 2 > self.size:
            first = self.signs[0]
            raise PrefixIgnored(
                f"annotator {self.name!r}: the server does not continue the reply prefix {prefix!r}: "
                f"{len(self.signs)} of the first {self.size} replies start a new turn instead (e.g. first token "
                f"{first.reply!r}, label mass {first.label_mass:.2g}). Stopped early; finished requests are in "
                "the cache. Fix: api: completions (the chat template is applied here, so the prefix is part of "
                "the prompt), a server that continues the final assistant message (vLLM's "
                "continue_final_message), or score_mode: json"
            )


class DocumentProgress:
    """Counts a document on a progress bar once each of its requests is answered: found in the cache,
    committed to it, or failed for good. A request shared by several documents answers them all."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.answered: set[str] = set()
        self.waiting: dict[str, list[list[int]]] = {}

    def add(self, keys: Iterable[str]) -> None:
        """A document planned with the requests ``keys``."""
        pending = {key for key in keys if key not in self.answered}
        if not pending:
            self.bar.update()
            return
        left = [len(pending)]
        for key in pending:
            self.waiting.setdefault(key, []).append(left)

    def answer(self, keys: Iterable[str]) -> None:
        """The requests ``keys`` are answered."""
        for key in keys:
            self.answered.add(key)
            for left in self.waiting.pop(key, ()):
                left[0] -= 1
                if not left[0]:
                    self.bar.update()

    def skip(self, documents: int = 1) -> None:
        """Input records that leave without requests (empty text, bad records)."""
        self.bar.update(documents)


class Annotator:
    """An annotator ready to plan requests: tasks and prompts, truncation, and its backend."""

    def __init__(self, name: str, params: AnnotatorParams, tasks: Sequence[TaskParams], *, with_model: bool = True):
        self.name = name
        self.params = params
        self.setups = resolve_tasks(params, tasks, name)
        self.routers = {s.task.name: LanguageRouter(s.prompt, params.fallback_language) for s in self.setups}
        self.backend: Any = self._backend(with_model) if params.backend != "import" else None
        tokenizer = getattr(self.backend, "tokenizer", None)
        self.truncator = Truncator(params.max_document_tokens, tokenizer, params.chars_per_token)

    def _backend(self, with_model: bool) -> Any:
        p = self.params
        if p.backend == "local":
            from mlfilter.annotation.backends.local import LocalBackend

            return LocalBackend(p, with_model=with_model)
        if p.backend in ("openai", "openai_batch"):
            from mlfilter.annotation.backends.openai_client import OpenAIBackend

            tokenizer_name = p.tokenizer or (p.model if p.api == "completions" else "")
            tokenizer = load_tokenizer(tokenizer_name) if tokenizer_name else None
            return OpenAIBackend(p, tokenizer)
        raise MlfilterError(f"annotator {self.name!r}: unknown backend {p.backend!r}")

    def fallback_counts(self) -> dict[str, dict[str, int]]:
        """Per task, per document language, the documents that got the fallback language's prompt."""
        return {task: dict(sorted(router.fallbacks.items())) for task, router in self.routers.items()}

    def prefix(self, setup: TaskSetup) -> str:
        """The forced start of the reply: the prompt's score prefix in logprobs mode or when asked for."""
        if self.params.score_mode == "logprobs" or self.params.force_reply_prefix:
            return setup.prompt.score_prefix
        return ""

    def plan(self, document: Document, *, count: bool = True) -> DocumentPlan:
        """The requests for one document: per task, the prompt in its language (or the fallback's, counted
        when ``count``), one per generation."""
        text, truncated = self.truncator(document.text)
        plans = []
        for setup in self.setups:
            variant = self.routers[setup.task.name].variant(document.language, count=count)
            messages = variant.messages(text)
            prefix = self.prefix(setup)
            requests = tuple(
                self.backend.prepare(messages, prefix or None, g, setup.prompt.labels) for g in range(self.params.n)
            )
            plans.append(TaskPlan(setup.task.name, variant.language, truncated, prefix, requests))
        return DocumentPlan(document.id, tuple(plans))


class AnnotationRun:
    """One annotator over a set of input documents, with the shared request cache."""

    def __init__(
        self,
        annotator: Annotator,
        inputs: Sequence[str],
        cache_file: str | os.PathLike[str],
        *,
        fields: Mapping[str, str] | None = None,
        on_error: OnError = "raise",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.annotator = annotator
        self.params = annotator.params
        self.inputs = list(inputs)
        self.cache_file = Path(cache_file)
        self.fields = fields
        self.on_error = on_error
        self.env = os.environ if env is None else env
        self.failures: dict[str, str] = {}
        self.secrets: list[str | None] = []
        self.scheduled: set[str] = set()
        self.sent_keys: set[str] = set()
        self.done = 0
        self.tracker: DocumentProgress | None = None
        setups = annotator.setups
        self.report = AnnotationReport(
            annotator.name,
            self.params.backend,
            self.params.model,
            self.params.score_mode,
            [s.task.name for s in setups],
        )
        self.report.truncation = annotator.truncator.method
        self.report.prompts = {s.task.name: {"name": s.prompt.name, "sha256": s.prompt.sha256} for s in setups}

    # -- documents -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tracking(self) -> Iterator[DocumentProgress]:
        """A bar of the input documents, each counted once all its requests are answered (see ``_plans``)."""
        total = count_records(expand_inputs(self.inputs))
        with progress_bar(desc=f"annotate@{self.annotator.name}: documents", total=total, unit="doc") as bar:
            self.tracker = DocumentProgress(bar)
            try:
                yield self.tracker
            finally:
                self.tracker = None

    def _documents(self, count: bool) -> Iterator[Document]:
        skipped: Counter[str] = Counter()
        tracker = self.tracker if count else None
        for _, document in read_documents(self.inputs, fields=self.fields, on_error=self.on_error, skipped=skipped):
            if not document.text.strip():
                if count:
                    self.report.documents.drop("empty_text")
                if tracker is not None:
                    tracker.skip()
                continue
            if count:
                self.report.documents.keep()
            yield document
        if count:
            for reason, n in skipped.items():
                if reason != "invalid_utf8_replaced":
                    self.report.documents.drop(reason, n)
                    if tracker is not None:
                        tracker.skip(n)

    def _plans(self, count: bool) -> Iterator[list[DocumentPlan]]:
        """Documents planned, ``_DOCS_PER_CHUNK`` at a time; with ``count`` (the pass that counts documents in the
        report), each is added to the tracker, if any."""
        tracker = self.tracker if count else None
        chunk: list[DocumentPlan] = []
        for document in self._documents(count):
            plan = self.annotator.plan(document, count=count)
            if tracker is not None:
                tracker.add(r.key for r in plan.requests())
            chunk.append(plan)
            if len(chunk) >= _DOCS_PER_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _lookup(self, chunk: list[DocumentPlan], cache: RequestCache) -> tuple[list[PreparedRequest], set[str]]:
        """``(misses, hits)``: requests of ``chunk`` to send, and keys found in the cache.

        A request met earlier in this run (the same prompt twice) is neither sent nor counted again.
        """
        requests = [r for plan in chunk for r in plan.requests()]
        self.report.requests["planned"] += len(requests)
        fresh = {r.key: r for r in requests if r.key not in self.scheduled}
        hits = cache.contains_many(fresh)
        if self.tracker is not None:
            self.tracker.answer(hits)
        self.report.requests["cache_hits"] += len(hits)
        self.report.requests["unique"] += len(fresh)
        self.scheduled.update(fresh)
        return [r for key, r in fresh.items() if key not in hits], hits

    # -- sending ---------------------------------------------------------------------------------

    def _committed(self, keys: list[str]) -> None:
        """Called once results are committed to the cache: from now on they count as done."""
        self.done += len(keys)
        self.sent_keys.update(keys)
        if self.tracker is not None:
            self.tracker.answer(keys)
        self.report.requests["succeeded"] += len(keys)

    def _send_local(self) -> None:
        """Run what is not cached through the local model, committing batch by batch.

        Windows and batches are formed from every request of the run, cached or not, in input order,
        so a run resumed after a kill forms the same batches and skips exactly the committed ones.
        """
        backend = self.annotator.backend
        cache = RequestCache(self.cache_file)
        window_size = self.params.batch_size * 8
        window: list[PreparedRequest] = []
        try:
            for chunk in self._plans(count=True):
                requests = [r for plan in chunk for r in plan.requests()]
                self.report.requests["planned"] += len(requests)
                for request in requests:
                    if request.key not in self.scheduled:
                        self.scheduled.add(request.key)
                        window.append(request)
                while len(window) >= window_size:
                    self._run_local_window(backend, window[:window_size], cache)
                    window = window[window_size:]
            self._run_local_window(backend, window, cache)
        finally:
            cache.close()
        self.report.latencies.extend(backend.latencies)

    def _run_local_window(self, backend: Any, window: list[PreparedRequest], cache: RequestCache) -> None:
        hits = cache.contains_many(r.key for r in window)
        if self.tracker is not None:
            self.tracker.answer(hits)
        self.report.requests["unique"] += len(window)
        self.report.requests["cache_hits"] += len(hits)
        for batch in backend.batches(window):
            if all(r.key in hits for r in batch):
                continue
            results = backend.run_batch(batch)
            fresh = [
                (r.key, orjson.dumps(result)) for r, result in zip(batch, results, strict=True) if r.key not in hits
            ]
            cache.put_many(fresh)
            self.report.requests["sent"] += len(fresh)
            self._committed([key for key, _ in fresh])

    def _check_nothing_to_send(self) -> None:
        """Without a base URL a run can still go on when every request is cached; else a clear error."""
        reader = RequestCache(self.cache_file)
        try:
            misses = sum(len(self._lookup(chunk, reader)[0]) for chunk in self._plans(count=True))
        finally:
            reader.close()
        if misses:
            raise missing_base_url(self.params, self.annotator.name, misses)

    def _json_rejected(self, failure: Any) -> None:
        """Raise when the server rejects json mode's schema: every other request would fail alike."""
        detail = failure.detail.casefold()
        if (
            self.params.score_mode == "json"
            and failure.kind in ("http_400", "http_422")
            and any(word in detail for word in _SCHEMA_REJECTED)
        ):
            raise MlfilterError(
                f"annotator {self.annotator.name!r}: the server rejects score_mode: json (a JSON schema in "
                f"response_format): {failure.detail[:300]}. Use score_mode: generate (score_pattern) or "
                "score_mode: logprobs with this server"
            )

    def _client(self, urls: list[str]) -> Any:
        """The HTTP client of the openai and openai_batch backends for ``urls``; its key is masked in errors."""
        from mlfilter.annotation.backends.openai_client import OpenAIClient

        p = self.params
        api_key = self.env.get(p.api_key_env) or None
        self.secrets.append(api_key)
        return OpenAIClient(
            urls,
            api_key,
            concurrency=p.concurrency,
            timeout_s=p.timeout_s,
            max_retries=p.max_retries,
            backoff_initial_s=p.backoff_initial_s,
            backoff_max_s=p.backoff_max_s,
        )

    async def _send_batch(self) -> None:
        """Send what is not cached through the OpenAI Batch API, committing each batch's results."""
        from mlfilter.annotation.backends.openai_batch import BatchRunner, state_folder
        from mlfilter.annotation.backends.openai_client import RequestFailed

        cache = RequestCache(self.cache_file)
        folder = state_folder(self.cache_file, self.annotator.name)

        def commit(items: list[tuple[str, bytes]]) -> None:
            cache.put_many(items)
            self._committed([key for key, _ in items])

        urls = base_urls_from_env(self.params, self.env)
        try:
            misses = [r for chunk in self._plans(count=True) for r in self._lookup(chunk, cache)[0]]
            if not urls:
                if misses:
                    raise missing_base_url(self.params, self.annotator.name, len(misses))
                return
            async with self._client(urls) as client:
                batches = BatchRunner(self.params, self.annotator.backend, client, folder, commit)
                failures = await batches.run(misses)
        except RequestFailed as exc:
            raise MlfilterError(
                f"annotator {self.annotator.name!r}: the Batch API did not answer ({exc}); rerun to resume, "
                f"file and batch ids are saved in {folder}"
            ) from None
        finally:
            cache.close()
        self.failures.update(failures)
        if self.tracker is not None:
            self.tracker.answer(failures)
        self.report.failures.update(failures.values())
        self.report.requests["sent"] += batches.sent
        self.report.retries.update(client.stats.retries)
        self.report.retries.update(batches.resent)
        self.report.batches = {"rounds": batches.rounds, "status": dict(sorted(batches.batches.items()))}

    async def _send_openai(self) -> None:
        from mlfilter.annotation.backends.openai_client import RequestFailed

        backend = self.annotator.backend
        p = self.params
        urls = base_urls_from_env(p, self.env)
        if not urls:
            self._check_nothing_to_send()
            return
        client = self._client(urls)
        log.info(
            "annotator %s: %d endpoint(s), concurrency %d",
            self.annotator.name,
            len(client.pool.endpoints),
            p.concurrency,
        )
        Item = tuple[PreparedRequest, Judge, str]
        queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=2 * p.concurrency)
        reader = RequestCache(self.cache_file)
        committer = BatchedCommitter(self.cache_file, self._committed)
        setups = {s.task.name: s for s in self.annotator.setups}
        probe = PrefixProbe(self.annotator.name)

        async def produce() -> None:
            for chunk in self._plans(count=True):
                how = {
                    r.key: (setups[t.task].judge, t.prefix) for plan in chunk for t in plan.tasks for r in t.requests
                }
                for request in self._lookup(chunk, reader)[0]:
                    await queue.put((request, *how[request.key]))
            for _ in range(p.concurrency):
                await queue.put(None)

        async def work() -> None:
            while (item := await queue.get()) is not None:
                request, judge, prefix = item
                try:
                    result = await client.post(backend.path, request.payload, backend.read)
                except RequestFailed as exc:
                    self.failures[request.key] = exc.kind
                    if self.tracker is not None:
                        self.tracker.answer([request.key])
                    self._json_rejected(exc)
                else:
                    committer.add(request.key, orjson.dumps(result))
                    if prefix and probe.watching:
                        probe.observe(judge(result, prefix), prefix)

        try:
            async with client:
                commit_task = asyncio.create_task(committer.run())
                watch_task = asyncio.create_task(self._log_progress(client))
                tasks = [asyncio.create_task(produce()), *(asyncio.create_task(work()) for _ in range(p.concurrency))]
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                    for task in done:
                        if task.exception() is not None:
                            raise task.exception()  # type: ignore[misc]
                finally:
                    for task in [*tasks, watch_task]:
                        task.cancel()
                    await asyncio.gather(*tasks, watch_task, return_exceptions=True)
                    committer.close()
                    await asyncio.gather(commit_task, return_exceptions=True)
                    committer.shutdown()
                    reader.close()
        finally:
            self.report.requests["sent"] += client.stats.sent
            self.report.retries.update(client.stats.retries)
            self.report.failures.update(client.stats.failures)
            self.report.errors.update(client.stats.errors)
            self.report.latencies.extend(client.stats.latencies)
        if committer.error is not None:
            raise MlfilterError(f"{self.cache_file}: writing to the request cache failed: {committer.error}")

    async def _log_progress(self, client: Any) -> None:
        started = time.perf_counter()
        while True:
            await asyncio.sleep(_PROGRESS_LOG_S)
            elapsed = time.perf_counter() - started
            log.info(
                "annotator %s: %d requests done (%.1f/s), %d failed, %d retries",
                self.annotator.name,
                self.done,
                self.done / elapsed,
                len(self.failures),
                sum(client.stats.retries.values()),
            )

    # -- output ----------------------------------------------------------------------------------

    def _verdict(
        self, request: PreparedRequest, result: dict[str, Any] | None, setup: TaskSetup, prefix: str
    ) -> Verdict:
        """The verdict on one generation from its cached result, or its request failure."""
        if result is None:
            kind = self.failures.get(request.key)
            if kind is None:
                raise MlfilterError(f"request {request.key} has neither a cached result nor a failure")
            return Verdict(None, request_failed(kind), None)
        if request.key in self.sent_keys:
            self.sent_keys.discard(request.key)
            self.report.tokens["sent_prompt"] += result["prompt_tokens"]
            self.report.tokens["sent_completion"] += result["completion_tokens"]
            self.report.tokens["sent_reasoning"] += result.get("reasoning_tokens", 0)
        return setup.judge(result, prefix)

    def _record(self, plan: DocumentPlan, results: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        """The annotation record of one document (the data contract of DESIGN.md).

        Per task, one entry per generation in ``scores``, ``status``, ``replies``, ``finish_reason`` and
        ``reasoning`` (a reasoning model's thinking, truncated; null otherwise), plus ``distribution``
        and ``label_mass`` in logprobs mode; ``usage`` sums the server's token counts.
        """
        logprobs = self.params.score_mode == "logprobs"
        fields = ["prompt", "scores", "status", "replies", "finish_reason", "reasoning"]
        fields += ["distribution", "label_mass"] if logprobs else []
        record: dict[str, Any] = {"id": plan.doc_id, "annotator": self.annotator.name, "model": self.params.model}
        record.update({name: {} for name in fields})
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0}
        setups = {s.task.name: s for s in self.annotator.setups}
        for task_plan in plan.tasks:
            setup = setups[task_plan.task]
            verdicts = []
            for request in task_plan.requests:
                result = results.get(request.key)
                if result is not None:
                    for key in usage:
                        usage[key] += result.get(key, 0)
                verdicts.append(self._verdict(request, result, setup, task_plan.prefix))
            record["prompt"][task_plan.task] = {
                "name": setup.prompt.name,
                "sha256": setup.prompt.sha256,
                "language": task_plan.language,
            }
            record["scores"][task_plan.task] = [v.score for v in verdicts]
            record["status"][task_plan.task] = [v.status for v in verdicts]
            record["replies"][task_plan.task] = [v.reply for v in verdicts]
            record["finish_reason"][task_plan.task] = [v.finish_reason for v in verdicts]
            record["reasoning"][task_plan.task] = [v.reasoning for v in verdicts]
            if logprobs:
                record["distribution"][task_plan.task] = [v.distribution for v in verdicts]
                record["label_mass"][task_plan.task] = [v.label_mass for v in verdicts]
        record["usage"] = usage
        record["truncated"] = {t.task: t.truncated for t in plan.tasks}
        return record

    def _assemble(self, output: Path) -> None:
        reader = RequestCache(self.cache_file)
        try:
            with replaced_folder(output) as folder:
                writer = ShardedWriter(folder, records_per_shard=self.params.records_per_shard)
                bar = progress_bar(
                    desc=f"annotate@{self.annotator.name}: writing", total=self.report.documents.kept, unit="doc"
                )
                with writer, bar:
                    for chunk in self._plans(count=False):
                        results = reader.get_many({r.key for plan in chunk for r in plan.requests()})
                        for plan in chunk:
                            record = self._record(plan, results)
                            self.report.add_record(record)
                            writer.write(record)
                        bar.update(len(chunk))
        finally:
            reader.close()

    # -- entry points ----------------------------------------------------------------------------

    def _import(self, output: Path) -> None:
        """Convert original-format annotations of the input documents (``backend: import``)."""
        if len(self.annotator.setups) != 1:
            raise ParamsError(
                f"annotate.annotators.{self.annotator.name}.tasks: an import holds one task; name it in `tasks`"
            )
        setup = self.annotator.setups[0]
        mapper = LabelMapper(setup.prompt.labels)
        imported: dict[str, OriginalAnnotation] = {}
        skipped: Counter[str] = Counter()
        for _, annotation in read_original_annotations(
            self.params.import_paths, on_error=self.on_error, skipped=skipped
        ):
            if annotation.document_id in imported:
                skipped["duplicate_import"] += 1
            imported[annotation.document_id] = annotation
        matched = 0
        with (
            replaced_folder(output) as folder,
            ShardedWriter(folder, records_per_shard=self.params.records_per_shard) as writer,
        ):
            documents = progress(
                self._documents(count=False),
                desc=f"annotate@{self.annotator.name}: import",
                total=count_records(expand_inputs(self.inputs)),
                unit="doc",
            )
            for document in documents:
                annotation = imported.get(document.id)
                if annotation is None:
                    self.report.documents.drop("not_in_import")
                    continue
                matched += 1
                self.report.documents.keep()
                record = to_record(annotation, self.annotator.name, setup.task.name, mapper)
                self.report.add_record(record)
                writer.write(record)
        self.report.imported = {"records": len(imported), "matched": matched, "skipped": dict(sorted(skipped.items()))}

    def run(self, output: str | os.PathLike[str]) -> dict[str, Any]:
        """Annotate every document, write ``output`` (sharded JSONL) and return the report."""
        stopwatch = Stopwatch()
        if self.params.backend == "import":
            self._import(Path(output))
            return self.report.as_dict(stopwatch.seconds)
        self._check_languages()
        with self._tracking():
            if self.params.backend == "local":
                self._send_local()
            elif self.params.backend == "openai_batch":
                asyncio.run(self._send_batch())
            else:
                asyncio.run(self._send_openai())
        self._assemble(Path(output))
        self.report.documents.check_balance()
        return {**self.report.as_dict(stopwatch.seconds), "prompt_fallbacks": self.annotator.fallback_counts()}

    def _check_languages(self) -> None:
        """Where ``fallback_language`` is null, every document's language needs a variant: checked over the
        whole input before any request is sent (raises :class:`PromptError` naming the languages)."""
        routers = [router for router in self.annotator.routers.values() if router.fallback is None]
        if routers:
            languages = Counter(document.language for document in self._documents(count=False))
            for router in routers:
                router.check(languages.elements())

    def dry_run(self) -> dict[str, Any]:
        """What a run would do: requests and prompt tokens to send, cache hits, estimated output tokens."""
        self._check_languages()
        cache = RequestCache(self.cache_file)
        backend = self.annotator.backend
        to_send: list[PreparedRequest] = []
        hit_chars: dict[str, int] = {}
        try:
            with self._tracking() as tracker:
                for chunk in self._plans(count=True):
                    misses, hits = self._lookup(chunk, cache)
                    tracker.answer(r.key for r in misses)
                    to_send.extend(misses)
                    hit_chars.update(
                        (r.key, r.prompt_chars) for plan in chunk for r in plan.requests() if r.key in hits
                    )
            cached = cache.get_many(sorted(hit_chars)[:10_000])
        finally:
            cache.close()
        prompt_tokens, method = self._prompt_tokens(backend, to_send, cached, hit_chars)
        if self.params.score_mode == "logprobs":
            per_request, basis = 1.0, "one token per request (logprobs mode)"
        elif cached:
            per_request = sum(r["completion_tokens"] for r in cached.values()) / len(cached)
            basis = f"mean completion tokens of {len(cached)} cached results"
        else:
            per_request, basis = float(self.params.sampling.max_new_tokens), "max_new_tokens (upper bound)"
        estimate = {
            "annotator": self.annotator.name,
            "backend": self.params.backend,
            "model": self.params.model,
            "documents": self.report.documents.as_dict(),
            "requests": self.report.requests["planned"],
            "unique_requests": self.report.requests["unique"],
            "cache_hits": self.report.requests["cache_hits"],
            "to_send": len(to_send),
            "prompt_tokens_to_send": prompt_tokens,
            "prompt_tokens_method": method,
            "estimated_output_tokens": round(per_request * len(to_send)),
            "output_tokens_basis": basis,
            "prompt_fallbacks": self.annotator.fallback_counts(),
        }
        if self.params.backend == "openai_batch":
            estimate.update(self._batch_estimate(to_send, prompt_tokens, estimate["estimated_output_tokens"]))
        return estimate

    def _batch_estimate(
        self, requests: Sequence[PreparedRequest], prompt_tokens: int, output_tokens: int
    ) -> dict[str, Any]:
        """The request files a batch run would upload and its cost at the annotator's prices per token."""
        from mlfilter.annotation.backends.openai_batch import batch_plan, endpoint_url, split_requests

        p = self.params
        url = endpoint_url(self.annotator.backend)
        files = batch_plan(split_requests(requests, url, p.batch_max_requests, p.batch_max_bytes))
        cost = prompt_tokens * p.price_per_input_token + output_tokens * p.price_per_output_token
        return {
            "batch_files": files,
            "estimated_cost": round(cost, 6),
            "cost_basis": f"{p.price_per_input_token} per prompt token + {p.price_per_output_token} per output token",
        }

    def _prompt_tokens(
        self,
        backend: Any,
        requests: Sequence[PreparedRequest],
        cached: Mapping[str, dict[str, Any]],
        hit_chars: Mapping[str, int],
    ) -> tuple[int, str]:
        """Prompt tokens of ``requests`` as the server will count them, and how they were counted.

        With a tokenizer: the chat template applied as the server applies it (plus the forced reply
        prefix). Without one: characters scaled by the server's own counts of cached results when there
        are some, else by ``chars_per_token``.
        """
        if self.params.backend == "local":
            return sum(backend.count_tokens(r.payload.text) for r in requests), "tokenizer"
        tokenizer = backend.tokenizer
        if tokenizer is None:
            chars = sum(r.prompt_chars for r in requests)
            counted = [(r["prompt_tokens"], hit_chars[k]) for k, r in cached.items() if r.get("prompt_tokens")]
            if counted:
                tokens_per_char = sum(t for t, _ in counted) / max(1, sum(c for _, c in counted))
                return round(chars * tokens_per_char), f"server counts of {len(counted)} cached results, per character"
            return round(chars / self.params.chars_per_token), f"estimate: characters / {self.params.chars_per_token}"
        total = 0
        for request in requests:
            body = orjson.loads(request.payload)
            if "prompt" in body:
                text = body["prompt"]
            else:
                messages = body["messages"]
                prefix = messages[-1]["content"] if body.get("continue_final_message") else None
                text = backend.prompt_text(messages[:-1] if prefix is not None else messages, prefix)
            total += len(tokenizer(text, add_special_tokens=False)["input_ids"])
        return total, "tokenizer with the chat template"


@contextlib.contextmanager
def replaced_folder(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary folder to fill; on success it takes the place of ``path``.

    Leftovers of killed runs (``.<name>.tmp-<pid>``, ``.<name>.old-<pid>``) are removed first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*path.parent.glob(f".{path.name}.tmp-*"), *path.parent.glob(f".{path.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load_env_file(path: str | os.PathLike[str] | None) -> None:
    """Read ``KEY=value`` lines of an untracked ``.env`` into the environment (set variables win)."""
    if path and Path(path).is_file():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def check_budget(run: AnnotationRun, max_invalid_fraction: float) -> None:
    """Raise when, for some task, more generations are invalid (any status but ``ok``) than the annotator
    allows; called after the output, the report and the cache are written (not for imported annotations,
    whose nulls no param of ours can fix). The message names the top statuses, three examples and the
    param most likely to fix it."""
    report = run.report
    broken = [task for task in report.tasks if report.invalid_fraction(task) > max_invalid_fraction]
    if broken:
        raise MlfilterError("\n".join(report.budget_message(task, max_invalid_fraction) for task in broken))


def annotate(
    name: str,
    params: AnnotatorParams,
    tasks: Sequence[TaskParams],
    inputs: Sequence[str],
    output: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    *,
    cache: str | None = None,
    env_file: str | None = ".env",
    fields: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    dry_run: bool = False,
) -> dict[str, Any]:
    """Run one annotator: write its records and report, or with ``dry_run`` only return what it would send."""
    load_env_file(env_file)
    annotator = Annotator(name, params, tasks, with_model=not dry_run)
    run = AnnotationRun(annotator, inputs, cache_path(cache), fields=fields, on_error=on_error)
    try:
        if dry_run:
            return run.dry_run()
        report = run.run(output)
    except KeyboardInterrupt:
        raise Interrupted(
            f"annotator {name!r}: interrupted; {run.done} request(s) finished in this run are saved in the request "
            f"cache {run.cache_file}. Run the same command again to resume: finished requests are not sent again"
        ) from None
    except MlfilterError as exc:
        masked = redact(str(exc), run.secrets)
        if masked == str(exc):
            raise
        raise type(exc)(masked) from None
    write_report(report_path, report)
    log.info(
        "annotator %s: %d documents, %d requests sent, %d cache hits, %d failed, %.2f docs/s",
        name,
        report["documents"]["kept"],
        report["requests"]["sent"],
        report["requests"]["cache_hits"],
        report["requests"]["failed"],
        report["throughput"]["docs_per_s"],
    )
    if params.backend != "import":
        check_budget(run, params.max_invalid_fraction)
    return report
