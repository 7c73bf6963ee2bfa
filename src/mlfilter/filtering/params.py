"""Typed parameters of the filter stage (``params.yaml`` → ``filter:``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mlfilter.params import ParamsError

LongDocuments = Literal["truncate", "chunk"]
ChunkAggregate = Literal["mean", "max"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
KeepRuleName = Literal["threshold", "raw_cut", "quantile", "token_budget", "all"]
Combine = Literal["all", "any"]


@dataclass(frozen=True)
class ScoringParams:
    """How documents are tokenized, batched and run through the model.

    Documents longer than ``max_length`` tokens are cut to their head (``truncate``) or split into
    windows of ``max_length`` tokens overlapping by ``chunk_overlap`` whose scores are averaged or
    maxed (``chunk``); at most ``max_chunks`` evenly spaced windows are scored per document.
    ``token_budget`` 0 picks 4096 padded tokens per batch on a CPU and 32768 on a GPU; ``dtype`` auto
    picks bfloat16 on GPUs and on CPUs with native bfloat16 arithmetic, float32 elsewhere.
    ``tokenize_workers``: tokenizer processes per scorer (0: the usable cores when scoring on a GPU, none —
    in-process — on a CPU, whose cores run the model); a runtime knob, it never changes scores.
    ``compile``: run the encoder compiled by TorchInductor (:mod:`mlfilter.filtering.compiled`; scores equal to
    eager within 1e-4; about 40 CPU-seconds once per process); a runtime knob, off by default: in float32 on a CPU
    it gains nothing measurable (``benchmarks/bench_filter_engine.py``).
    """

    max_length: int = 512
    long_documents: LongDocuments = "truncate"
    chunk_aggregate: ChunkAggregate = "mean"
    chunk_overlap: int = 64
    max_chunks: int = 16
    token_budget: int = 0
    max_batch_size: int = 256
    window: int = 4096
    tokenize_workers: int = 0
    device: str = "auto"
    dtype: Dtype = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ParamsError(f"filter.scoring.max_length: expected at least 8, got {self.max_length}")
        if self.chunk_overlap < 0 or (self.long_documents == "chunk" and self.chunk_overlap >= self.max_length // 2):
            raise ParamsError(
                f"filter.scoring.chunk_overlap: expected 0 <= overlap < max_length / 2, got {self.chunk_overlap}"
            )
        if self.token_budget < 0:
            raise ParamsError(f"filter.scoring.token_budget: expected 0 (auto) or more, got {self.token_budget}")
        if self.tokenize_workers < 0:
            raise ParamsError(
                f"filter.scoring.tokenize_workers: expected 0 (auto) or more, got {self.tokenize_workers}"
            )
        for name in ("max_chunks", "max_batch_size", "window"):
            if getattr(self, name) < 1:
                raise ParamsError(f"filter.scoring.{name}: expected a positive integer, got {getattr(self, name)}")


@dataclass(frozen=True)
class KeepParams:
    """Which documents are written to the output.

    - ``threshold``: a document is kept when its scores reach ``thresholds`` (per task; a task not
      listed uses its ``tasks[].threshold``) on ``all`` or ``any`` tasks. A score reaches ``t`` when, rounded
      half up, it is ``>= t`` (FineWeb-Edu's ``int_score >= t``: 2.5 reaches 3), as in training and evaluate.
      ``thresholds: calibrated`` uses instead the cuts on the raw score that training calibrated on the
      validation split.
    - ``raw_cut``: the same, but the raw score must be ``>= thresholds`` (no rounding).
    - ``quantile``: the best ``fraction`` of documents by the ``rank_by`` task score.
    - ``token_budget``: the best documents whose tokens add up to at most ``fraction`` of all tokens,
      or to at most ``max_tokens`` when set.
    - ``all``: every document, with its scores attached (``null`` for an empty or whitespace-only text,
      which every other rule drops as ``empty_text``).

    Quantiles and budgets apply within each language when ``per_language`` (the default).
    """

    rule: KeepRuleName = "threshold"
    thresholds: dict[str, float] | Literal["calibrated"] = field(default_factory=dict)
    combine: Combine = "all"
    fraction: float = 0.1
    max_tokens: int | None = None
    rank_by: str | None = None
    per_language: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ParamsError(f"filter.keep.fraction: expected a value in [0, 1], got {self.fraction}")
        if self.max_tokens is not None and self.max_tokens < 0:
            raise ParamsError(f"filter.keep.max_tokens: expected a non-negative integer, got {self.max_tokens}")


@dataclass(frozen=True)
class RayParams:
    """The Ray cluster used when ``engine: ray``.

    ``address``: ``null`` joins the cluster named by ``RAY_ADDRESS`` or starts a local one; ``actors``:
    the number of scorer actors (0 = one per GPU of the cluster, or one on a cluster without GPUs);
    each takes one GPU where the cluster has GPUs, and ``cpus_per_actor`` CPUs.
    """

    address: str | None = None
    actors: int = 0
    cpus_per_actor: float = 1.0
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.actors < 0:
            raise ParamsError(f"filter.ray.actors: expected 0 (auto) or more, got {self.actors}")
        if self.batch_size < 1:
            raise ParamsError(f"filter.ray.batch_size: expected a positive integer, got {self.batch_size}")


@dataclass(frozen=True)
class FilterParams:
    """The ``filter:`` section: the corpus, the model, the scoring engine and the keep rule.

    Parquet shards are written with their input's Arrow schema plus the ``score_field`` column. Input
    Parquet files whose schemas differ stop the run naming both files (``parquet_schema: same``), or are
    all written with the union of their schemas (``unify``).
    """

    inputs: tuple[str, ...] = ("data/sample",)
    model: str = "models/annotator/final"
    fields: dict[str, str] = field(default_factory=dict)
    score_field: str = "scores"
    on_bad_record: Literal["skip", "raise"] = "skip"
    on_bad_shard: Literal["fail", "skip"] = "fail"
    engine: Literal["local", "ray"] = "local"
    workers: int = 0
    scoring: ScoringParams = field(default_factory=ScoringParams)
    keep: KeepParams = field(default_factory=KeepParams)
    ray: RayParams = field(default_factory=RayParams)
    sweep_step: float = 0.1
    parquet_schema: Literal["same", "unify"] = "same"

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ParamsError("filter.inputs: at least one file, folder or glob is required")
        if self.workers < 0:
            raise ParamsError(f"filter.workers: expected 0 (auto) or more, got {self.workers}")
        if self.sweep_step <= 0:
            raise ParamsError(f"filter.sweep_step: expected a positive number, got {self.sweep_step}")
        unknown = sorted(set(self.fields) - {"id", "text", "url", "language", "metadata"})
        if unknown:
            raise ParamsError(f"filter.fields.{unknown[0]}: unknown document field; allowed: id, text, language, url")
