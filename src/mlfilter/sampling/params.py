"""Typed ``sample:`` section of ``params.yaml``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from mlfilter.params import ParamsError
from mlfilter.sampling.langid import normalize_language

SourceType = Literal["warc", "commoncrawl", "documents"]
DOCUMENT_FIELDS = ("id", "text", "url", "language", "metadata")
CRAWL_ID = re.compile(r"^CC-MAIN-\d{4}-\d{2}$")


@dataclass(frozen=True)
class SourceParams:
    """One input of the sample.

    ``warc``: WARC or WET files, folders or globs, local or ``http(s)://`` / ``s3://`` (``paths``).
    ``commoncrawl``: ``files`` WARC or WET files (``format``) drawn with the seed from the listing of
    crawl ``crawl`` (e.g. ``CC-MAIN-2024-33``) under ``base_url``.
    ``documents``: JSONL/Parquet document files (``paths``) whose keys ``fields`` maps to the Document
    fields, e.g. ``{id: id, text: text, url: url}`` for FineWeb-2 shards.
    """

    type: SourceType
    paths: tuple[str, ...] = ()
    crawl: str = ""
    files: int = 1
    format: Literal["warc", "wet"] = "warc"
    base_url: str = "https://data.commoncrawl.org/"
    fields: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type == "commoncrawl":
            if not CRAWL_ID.match(self.crawl):
                raise ParamsError(f"crawl: expected a crawl id like 'CC-MAIN-2024-33', got {self.crawl!r}")
            if self.files < 1:
                raise ParamsError(f"files: expected at least 1, got {self.files}")
            if self.paths:
                raise ParamsError("paths: not used by a commoncrawl source (it draws files from the crawl listing)")
        else:
            if not self.paths:
                raise ParamsError(f"paths: a {self.type} source needs at least one file, folder or glob")
            if self.crawl:
                raise ParamsError(f"crawl: only a commoncrawl source takes a crawl id, not a {self.type} source")
        if self.fields and self.type != "documents":
            raise ParamsError("fields: only a documents source has a field mapping")
        unknown = sorted(set(self.fields) - set(DOCUMENT_FIELDS))
        if unknown:
            raise ParamsError(f"fields.{unknown[0]}: unknown Document field; allowed: {', '.join(DOCUMENT_FIELDS)}")


@dataclass(frozen=True)
class SampleRayParams:
    """The Ray cluster of ``engine: ray``: ``address`` ``null`` joins the cluster named by ``RAY_ADDRESS``
    or starts a local one; ``cpus_per_task``: CPUs reserved per input file."""

    address: str | None = None
    cpus_per_task: float = 1.0

    def __post_init__(self) -> None:
        if self.cpus_per_task <= 0:
            raise ParamsError(f"ray.cpus_per_task: expected a positive number, got {self.cpus_per_task}")


@dataclass(frozen=True)
class SampleParams:
    """How the sample is drawn: sources, per-language targets, extraction, filters, parallelism."""

    sources: tuple[SourceParams, ...]
    targets: dict[str, int] = field(default_factory=dict)
    fractions: dict[str, float] = field(default_factory=dict)
    extractor: Literal["trafilatura", "resiliparse"] = "trafilatura"
    extraction_timeout_s: float = 30.0
    language_id: Literal["py3langid", "lingua"] = "py3langid"
    min_language_score: float = 0.5
    min_chars: int = 200
    max_chars: int = 100_000
    dedup: tuple[Literal["text", "url"], ...] = ("text", "url")
    compression: Literal["zst", "gz"] = "zst"
    records_per_shard: int = 100_000
    workers: int = 0
    engine: Literal["local", "ray"] = "local"
    ray: SampleRayParams = field(default_factory=SampleRayParams)
    on_error: Literal["raise", "skip"] = "raise"
    retries: int = 3
    retry_backoff_s: float = 1.0
    work_dir: str = ".mlfilter/work/sample"
    keep_work: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise ParamsError("sources: at least one source is required")
        object.__setattr__(self, "targets", _normalized_keys("targets", self.targets))
        object.__setattr__(self, "fractions", _normalized_keys("fractions", self.fractions))
        if not self.targets and not self.fractions:
            raise ParamsError("targets: name at least one language in targets or fractions")
        both = sorted(set(self.targets) & set(self.fractions))
        if both:
            raise ParamsError(f"targets.{both[0]}: a language takes a target count or a fraction, not both")
        for lang, count in self.targets.items():
            if count < 1:
                raise ParamsError(f"targets.{lang}: expected at least 1 document, got {count}")
        for lang, fraction in self.fractions.items():
            if not 0 < fraction <= 1:
                raise ParamsError(f"fractions.{lang}: expected a fraction in (0, 1], got {fraction}")
        if not 0 <= self.min_language_score <= 1:
            raise ParamsError(f"min_language_score: expected a value in [0, 1], got {self.min_language_score}")
        if not 0 <= self.min_chars < self.max_chars:
            raise ParamsError(
                f"min_chars, max_chars: expected 0 <= min_chars < max_chars, got {self.min_chars}, {self.max_chars}"
            )
        if self.records_per_shard < 1:
            raise ParamsError(f"records_per_shard: expected at least 1, got {self.records_per_shard}")
        for name in ("workers", "retries"):
            if getattr(self, name) < 0:
                raise ParamsError(f"{name}: expected 0 or more, got {getattr(self, name)}")
        if self.extraction_timeout_s < 0:
            raise ParamsError(f"extraction_timeout_s: expected 0 (no limit) or more, got {self.extraction_timeout_s}")
        if self.retry_backoff_s < 0:
            raise ParamsError(f"retry_backoff_s: expected 0 or more, got {self.retry_backoff_s}")

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language sampled (the allow-list), sorted."""
        return tuple(sorted({*self.targets, *self.fractions}))


def _normalized_keys(name: str, mapping: dict[str, float] | dict[str, int]) -> dict:
    out: dict = {}
    for code, value in mapping.items():
        lang = normalize_language(code)
        if lang in out:
            raise ParamsError(f"{name}.{code}: the same language as another key ({lang})")
        out[lang] = value
    return out
