"""Work on one input file, in a worker process: read, extract, identify languages, filter, spool.

The result of a file is three files under the work folder, named by a fingerprint of the file and of
every setting that shapes the result: the candidate documents (``.jsonl.zst``), their sampling keys
(``.keys.npy``) and a summary of the counts (``.json``), written last. A file whose summary exists is
done: a rerun after a crash or a kill starts from the files not done yet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mlfilter.atomic import atomic_open, write_json
from mlfilter.records import OnError, RecordWriter
from mlfilter.sampling.errors import InputFileError
from mlfilter.sampling.extract import ExtractorName, make_extractor
from mlfilter.sampling.filters import (
    Dropped,
    LanguageFilter,
    LanguageScoreFilter,
    LengthFilter,
    SampleDocument,
)
from mlfilter.sampling.langid import (
    BACKEND_PACKAGES,
    CONFIDENCE_BINS,
    LanguageIdBackend,
    confidence_bin,
    language_identifier,
)
from mlfilter.sampling.params import SampleParams
from mlfilter.sampling.readers import JsonDocumentReader, WarcDocumentReader
from mlfilter.sampling.reservoir import KEY_DTYPE, document_keys, fraction_threshold
from mlfilter.sampling.sources import InputFile, file_identity, is_transient, open_stream, with_retries

#: Bumped when the work files' content changes meaning, so old ones are not reused.
WORK_FORMAT = 2
#: How often (seconds) a file's reading position is reported to the progress bar.
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class FileSettings:
    """The settings that shape one file's result (and the retry policy, which does not)."""

    extractor: ExtractorName
    extraction_timeout_s: float
    min_chars: int
    max_chars: int
    min_language_score: float
    languages: tuple[str, ...]
    fractions: tuple[tuple[str, float], ...]
    seed: int
    on_error: OnError
    language_id: LanguageIdBackend = "py3langid"
    retries: int = 0
    retry_backoff_s: float = 1.0

    @classmethod
    def from_params(cls, params: SampleParams, seed: int) -> FileSettings:
        """The per-file settings of the sample params."""
        return cls(
            extractor=params.extractor,
            extraction_timeout_s=params.extraction_timeout_s,
            min_chars=params.min_chars,
            max_chars=params.max_chars,
            min_language_score=params.min_language_score,
            languages=params.languages,
            fractions=tuple(sorted(params.fractions.items())),
            seed=seed,
            on_error=params.on_error,
            language_id=params.language_id,
            retries=params.retries,
            retry_backoff_s=params.retry_backoff_s,
        )

    def fingerprint(self, file: InputFile) -> str:
        """A hash of the file's identity, these settings (less the retry policy) and the versions of the
        libraries whose output ends up in the result."""
        shaping = dataclasses.asdict(self)
        del shaping["retries"], shaping["retry_backoff_s"]
        packages = (self.extractor, BACKEND_PACKAGES[self.language_id], "fastwarc")
        versions = {name: importlib.metadata.version(name) for name in packages}
        blob = json.dumps(
            [WORK_FORMAT, shaping, versions, dataclasses.asdict(file), file_identity(file.path)], sort_keys=True
        )
        return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


@dataclass
class FileSummary:
    """What became of one input file's records."""

    path: str
    records: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    extracted: int = 0
    candidates: int = 0
    identified: dict[str, int] = field(default_factory=dict)
    confidence: dict[str, list[int]] = field(default_factory=dict)
    error: dict[str, str] | None = None
    seconds: float = 0.0
    reused: bool = False

    def to_json(self) -> dict[str, Any]:
        """The persisted form (without ``reused``)."""
        data = dataclasses.asdict(self)
        del data["reused"]
        return data


@dataclass(frozen=True)
class FileTask:
    """One input file to process and where its work files go."""

    index: int
    file: InputFile
    settings: FileSettings
    work_prefix: str
    #: The file's size in bytes where known (the progress bar counts bytes read), else None.
    size: int | None = None

    @property
    def spool_path(self) -> Path:
        return Path(self.work_prefix + ".jsonl.zst")

    @property
    def keys_path(self) -> Path:
        return Path(self.work_prefix + ".keys.npy")

    @property
    def summary_path(self) -> Path:
        return Path(self.work_prefix + ".json")

    def work_files(self) -> tuple[Path, Path, Path]:
        """The three work files of this task."""
        return self.spool_path, self.keys_path, self.summary_path

    def load_summary(self) -> FileSummary | None:
        """The summary of an earlier run of this task, if it finished."""
        if not self.summary_path.exists():
            return None
        summary = FileSummary(**orjson.loads(self.summary_path.read_bytes()))
        summary.reused = True
        return summary

    def load_keys(self) -> np.ndarray:
        """The sampling keys of the task's candidates, in spool order."""
        return np.load(self.keys_path, allow_pickle=False)


class DocumentFilters:
    """Length, language identification, language score and allow-list, in this order."""

    def __init__(self, settings: FileSettings) -> None:
        self.length = LengthFilter(settings.min_chars, settings.max_chars)
        self.identifier = language_identifier(settings.language_id)
        self.language_filters = (
            LanguageScoreFilter(settings.min_language_score),
            LanguageFilter(frozenset(settings.languages)),
        )
        self.identified: Counter[str] = Counter()
        self.confidence: dict[str, list[int]] = {}

    def __call__(self, document: SampleDocument) -> str | None:
        """The reason ``document`` is dropped, or ``None``; sets its language on the way."""
        reason = self.length(document)
        if reason:
            return reason
        guess = self.identifier.identify(document.text)
        document.language, document.language_score = guess.language, guess.score
        self.identified[guess.language] += 1
        histogram = self.confidence.setdefault(guess.language, [0] * CONFIDENCE_BINS)
        histogram[confidence_bin(guess.score)] += 1
        for language_filter in self.language_filters:
            reason = language_filter(document)
            if reason:
                return reason
        return None


class ByteProgress:
    """Reports how far into its file a task has read to ``on_bytes(new_bytes)``: at most every
    ``PROGRESS_INTERVAL_S`` seconds, and never the same bytes twice (a retried file is read again from
    its start)."""

    def __init__(self, on_bytes: Callable[[int], None] | None) -> None:
        self.on_bytes = on_bytes
        self.reached = 0
        self.last = time.perf_counter()

    def at(self, position: int, *, final: bool = False) -> None:
        """The file is read up to byte ``position``; ``final`` reports it whatever the time since the last."""
        if self.on_bytes is None or position <= self.reached:
            return
        now = time.perf_counter()
        if final or now - self.last >= PROGRESS_INTERVAL_S:
            self.on_bytes(position - self.reached)
            self.reached, self.last = position, now


def process_file(task: FileTask, on_bytes: Callable[[int], None] | None = None) -> FileSummary:
    """Process one input file (retrying network failures) and write its work files.

    ``on_bytes(n)`` is told of every ``n`` further bytes of the file read (all of ``task.size`` by the end).
    A file that cannot be read to its end gives a summary with ``error`` set: ``reason`` and a message
    naming the file and the offset or line; the records read before the damage count as usual. A file
    still unreachable after the retries is not marked done, so the next run tries it again.
    """
    start = time.perf_counter()
    path = task.file.path
    progress = ByteProgress(on_bytes)
    try:
        return with_retries(
            lambda: _process_once(task, progress),
            path,
            retries=task.settings.retries,
            backoff_s=task.settings.retry_backoff_s,
        )
    except Exception as exc:
        reason = _failure_reason(exc, path)
        if reason is None:
            raise
        seconds = round(time.perf_counter() - start, 3)
        return FileSummary(path, error={"reason": reason, "message": f"{path}: {exc}"}, seconds=seconds)
    finally:
        progress.at(task.size or 0, final=True)


def _failure_reason(error: Exception, path: str) -> str | None:
    if is_transient(error, path):
        return "unreachable"
    if isinstance(error, FileNotFoundError):
        return "not_found"
    if isinstance(error, OSError):
        return "unreadable"
    return None


def _process_once(task: FileTask, progress: ByteProgress) -> FileSummary:
    start = time.perf_counter()
    settings = task.settings
    filters = DocumentFilters(settings)
    fraction_limits = {lang: fraction_threshold(f) for lang, f in settings.fractions}
    dropped: Counter[str] = Counter()
    keys: list[tuple] = []
    records = 0
    error = None
    reader = _reader(task)
    with RecordWriter(task.spool_path) as spool:
        try:
            for item, position in _items(task, reader):
                if isinstance(item, Dropped):
                    records += item.count
                    dropped[item.reason] += item.count
                else:
                    records += 1
                    reason = filters(item)
                    if reason is None:
                        row = document_keys(settings.seed, item.id, item.text, item.url, item.language or "")
                        limit = fraction_limits.get(item.language or "")
                        if limit is not None and row[0] >= limit:
                            reason = "not_sampled"
                        else:
                            keys.append(row)
                            spool.write(item.to_record())
                    if reason is not None:
                        dropped[reason] += 1
                progress.at(position)
        except InputFileError as exc:
            error = {"reason": exc.reason, "message": str(exc)}
    with atomic_open(task.keys_path, "wb") as handle:
        np.save(handle, np.array(keys, dtype=KEY_DTYPE), allow_pickle=False)
    summary = FileSummary(
        path=task.file.path,
        records=records,
        dropped=dict(sorted(dropped.items())),
        extracted=reader.extracted,
        candidates=len(keys),
        identified=dict(sorted(filters.identified.items())),
        confidence=dict(sorted(filters.confidence.items())),
        error=error,
        seconds=round(time.perf_counter() - start, 3),
    )
    write_json(task.summary_path, summary.to_json())
    return summary


def _reader(task: FileTask) -> WarcDocumentReader | JsonDocumentReader:
    if task.file.kind == "warc":
        return WarcDocumentReader(make_extractor(task.settings.extractor), task.settings.extraction_timeout_s)
    return JsonDocumentReader(dict(task.file.fields), task.settings.on_error)


def _items(
    task: FileTask, reader: WarcDocumentReader | JsonDocumentReader
) -> Iterator[tuple[SampleDocument | Dropped, int]]:
    """Each item of the file with the byte position read up to in the file (0 where not known: JSONL/Parquet)."""
    if isinstance(reader, JsonDocumentReader):
        for item in reader.read(task.file.path):
            yield item, 0
        return
    with open_stream(task.file.path) as raw:
        for item in reader.read(raw, task.file.path):
            yield item, raw.tell()
