"""Typed params of the ``annotate`` section of ``params.yaml``: the request cache and the annotators.

Each annotator is one DVC stage (``annotate@<name>``) that depends on exactly its own entry under
``annotate.annotators`` and on the shared ``tasks``; nothing here holds a secret — endpoint URLs and
API keys are read from the environment variables the annotator names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mlfilter.params import ParamsError, TaskParams

Backend = Literal["openai", "openai_batch", "local", "import"]
ScoreMode = Literal["generate", "logprobs", "json"]
ReasoningEffort = Literal["", "low", "medium", "high"]
Api = Literal["chat", "completions"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]

DEFAULT_CACHE = ".mlfilter/cache/requests.sqlite"
#: Limits of one OpenAI Batch API input file (https://platform.openai.com/docs/guides/batch).
BATCH_MAX_REQUESTS = 50_000
BATCH_MAX_BYTES = 200_000_000
#: Environment variable that overrides the request cache path of params.
CACHE_ENV = "MLFILTER_CACHE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SamplingParams:
    """Sampling of one generation.

    ``seed`` (optional) is a base seed: each request's seed is derived from it, the request's content
    hash and the generation index (:func:`mlfilter.annotation.backends.base.request_seed`), so runs are
    reproducible and documents draw independent random numbers. ``max_new_tokens`` bounds the final
    answer; ``max_reasoning_tokens`` is the extra budget of a reasoning model's thinking (added to the
    request's ``max_tokens``); ``reasoning_effort`` (``low``/``medium``/``high``) is sent as OpenAI's
    ``reasoning_effort`` when set.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int | None = None
    max_reasoning_tokens: int = 0
    reasoning_effort: ReasoningEffort = ""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ParamsError(f"temperature: expected a value >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ParamsError(f"top_p: expected a value in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ParamsError(f"max_new_tokens: expected at least 1, got {self.max_new_tokens}")
        if self.max_reasoning_tokens < 0:
            raise ParamsError(f"max_reasoning_tokens: expected at least 0, got {self.max_reasoning_tokens}")


@dataclass(frozen=True)
class AnnotatorParams:
    """One annotator: a backend, a model, how to prompt it and how to read its scores.

    ``backend``: ``openai`` (any OpenAI-compatible server: vLLM, TGI, llama.cpp server, OpenAI),
    ``openai_batch`` (the OpenAI Batch API: the same requests and cache entries as ``openai``, sent as
    files of at most ``batch_max_requests`` requests and ``batch_max_bytes`` bytes, polled every
    ``poll_interval_s`` seconds; ``price_per_input_token`` / ``price_per_output_token`` price the
    dry run), ``local`` (an in-process transformers causal LM) or ``import`` (annotation files of the
    original tool, ``import_paths``). ``model``: the served model name (openai), a hub id, a local folder or
    ``embedded:SmolLM2-135M-Instruct`` (local). ``tasks``: the tasks it scores (empty: all).
    ``prompts``: task → prompt file, overriding the task's own prompt for this annotator only.
    ``fallback_language``: the prompt variant for documents whose language has none (counted per language
    in the report); ``null``: such documents are an error before any request is sent.
    ``score_mode``: ``generate`` parses the score from each of ``n`` replies; ``logprobs`` forces the
    prompt's reply prefix and reads the probabilities of the label tokens (expected score +
    distribution; ``n`` must be 1); ``json`` asks for a JSON reply ``{"score": <label>}`` constrained by a
    JSON schema (OpenAI ``response_format``) and validates it.

    Validity: ``accept_length`` lets a reply cut off by the token limit count when it holds a score;
    ``min_label_mass`` is the least probability the labels must hold in logprobs mode (0.5: a clear
    majority); ``max_invalid_fraction`` is the share of generations per task that may end in any status
    but ``ok`` (:mod:`mlfilter.annotation.statuses`) before the stage fails. See ``params.yaml`` for
    every key.
    """

    backend: Backend = "openai"
    model: str = ""
    tasks: tuple[str, ...] = ()
    prompts: dict[str, str] = field(default_factory=dict)
    fallback_language: str | None = "en"
    score_mode: ScoreMode = "generate"
    n: int = 1
    sampling: SamplingParams = field(default_factory=SamplingParams)
    score_pattern: str = ""
    force_reply_prefix: bool = False
    accept_length: bool = False
    min_label_mass: float = 0.5
    top_logprobs: int = 20
    max_document_tokens: int = 0
    chars_per_token: float = 4.0
    tokenizer: str = ""
    api: Api = "chat"
    add_generation_prompt: bool = True
    base_url_env: str = "OPENAI_BASE_URL"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 64
    timeout_s: float = 300.0
    max_retries: int = 8
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    extra_body: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    dtype: Dtype = "auto"
    batch_size: int = 8
    import_paths: tuple[str, ...] = ()
    max_invalid_fraction: float = 0.05
    records_per_shard: int = 100_000
    completion_window: str = "24h"
    poll_interval_s: float = 30.0
    batch_max_requests: int = BATCH_MAX_REQUESTS
    batch_max_bytes: int = BATCH_MAX_BYTES
    price_per_input_token: float = 0.0
    price_per_output_token: float = 0.0

    def __post_init__(self) -> None:
        self._check_counts()
        if self.backend == "import":
            if not self.import_paths:
                raise ParamsError("import_paths: the import backend needs at least one file, folder or glob")
        elif not self.model:
            raise ParamsError(f"model: required for the {self.backend} backend")
        if self.score_mode == "logprobs" and self.n != 1:
            raise ParamsError(f"n: logprobs mode reads one distribution per document and task: use 1, not {self.n}")
        if self.score_mode == "json" and self.backend == "local":
            raise ParamsError("score_mode: json needs a server that enforces a JSON schema (backend: openai)")
        if self.score_mode == "json" and self.force_reply_prefix:
            raise ParamsError("force_reply_prefix: json mode constrains the whole reply; a forced prefix breaks it")
        if self.score_pattern:
            try:
                pattern = re.compile(self.score_pattern)
            except re.error as exc:
                raise ParamsError(f"score_pattern: not a valid regular expression: {exc}") from None
            if pattern.groups < 1:
                raise ParamsError("score_pattern: needs one capturing group around the score")
        for key in ("Authorization", "api_key", "headers"):
            if key in self.extra_body:
                raise ParamsError(f"extra_body.{key}: credentials never go in params; name an env var in api_key_env")

    def prompt_files(self, tasks: Sequence[TaskParams]) -> dict[str, str]:
        """Task name → the prompt file this annotator uses for it (its override, else the task's prompt)."""
        wanted = set(self.tasks) or {task.name for task in tasks}
        return {task.name: self.prompts.get(task.name, task.prompt) for task in tasks if task.name in wanted}

    def _check_counts(self) -> None:
        minimums = {
            "n": (self.n, 1),
            "concurrency": (self.concurrency, 1),
            "max_retries": (self.max_retries, 0),
            "batch_size": (self.batch_size, 1),
            "max_document_tokens": (self.max_document_tokens, 0),
            "records_per_shard": (self.records_per_shard, 1),
        }
        for key, (value, minimum) in minimums.items():
            if value < minimum:
                raise ParamsError(f"{key}: expected at least {minimum}, got {value}")
        if not 1 <= self.top_logprobs <= 20:
            raise ParamsError(
                f"top_logprobs: expected 1..20 (what OpenAI-compatible servers allow), got {self.top_logprobs}"
            )
        for key, limit in (("batch_max_requests", BATCH_MAX_REQUESTS), ("batch_max_bytes", BATCH_MAX_BYTES)):
            if not 1 <= getattr(self, key) <= limit:
                raise ParamsError(f"{key}: expected 1..{limit} (the Batch API's limit), got {getattr(self, key)}")
        for key in ("price_per_input_token", "price_per_output_token"):
            if getattr(self, key) < 0:
                raise ParamsError(f"{key}: expected a price >= 0 per token, got {getattr(self, key)}")
        for key in ("timeout_s", "chars_per_token", "poll_interval_s"):
            if getattr(self, key) <= 0:
                raise ParamsError(f"{key}: expected a value > 0, got {getattr(self, key)}")
        if self.backoff_initial_s < 0 or self.backoff_max_s < self.backoff_initial_s:
            raise ParamsError("backoff_initial_s/backoff_max_s: expected 0 <= backoff_initial_s <= backoff_max_s")
        for key in ("max_invalid_fraction", "min_label_mass"):
            if not 0 <= getattr(self, key) <= 1:
                raise ParamsError(f"{key}: expected a value in [0, 1], got {getattr(self, key)}")


@dataclass(frozen=True)
class AnnotateParams:
    """The ``annotate`` section: where the request cache lives and the annotators by name.

    ``cache``: the SQLite request cache shared by every annotator, rerun and experiment (the
    ``MLFILTER_CACHE`` environment variable overrides it). ``env_file``: an optional, untracked file
    of environment variables (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, …) read at start.
    """

    cache: str = DEFAULT_CACHE
    env_file: str = ".env"
    annotators: dict[str, AnnotatorParams] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.annotators:
            if not _NAME.match(name):
                raise ParamsError(
                    f"annotators.{name}: an annotator name becomes a folder and a stage name; "
                    "use letters, digits, '_', '-' and '.'"
                )

    def annotator(self, name: str) -> AnnotatorParams:
        """The params of annotator ``name``, with an error listing the known names."""
        if name not in self.annotators:
            known = ", ".join(self.annotators) or "none"
            raise ParamsError(f"annotate.annotators: no annotator {name!r}; known: {known}")
        return self.annotators[name]
