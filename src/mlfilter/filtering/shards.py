"""Per-shard work of the filter stage, resumable and idempotent.

Each input shard goes through two steps, each ending with a completion marker written after its
output file (both atomic):

1. **score**: every valid document's scores go to an attributes file (``id``, ``language``,
   ``tokens``, ``scores``) — its marker holds the shard's counts and score histograms. An empty or
   whitespace-only text has no score: ``null`` for every task, left out of the histograms and counted
   as ``empty``;
2. **apply**: the keep rule reads the attributes back and writes the kept documents, unchanged but
   for the added scores (the list in task order, and ``<task>_score`` / ``<task>_int_score`` per task), to the
   output shard of the same name. Empty documents are kept with ``null`` scores under the ``all`` rule and
   dropped as ``empty_text`` under every other rule.

Markers live in a hidden folder beside each output folder (``data/.filtered.markers/<name>.done`` for
``data/filtered/<name>``), never inside it: a glob of the output folder sees only data, and the
folder's DVC hash depends on the data alone. A marker holds no timing, so identical runs write
identical markers. It records a fingerprint of everything its file depends on (model, scoring
options, input file identity; the keep decision for step 2) and the SHA-256 of the file it vouches
for, so a file replaced or deleted since (``dvc checkout``, a user) is redone. A rerun skips shards
whose marker matches and redoes
the rest from scratch, so a crash or a kill at any point loses no finished shard and leaves no
half-written file behind; changing only the keep rule rescores nothing.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.atomic import write_json
from mlfilter.documents import Document, document_from_record
from mlfilter.errors import MlfilterError
from mlfilter.filtering.keep_rules import UNKNOWN_LANGUAGE, KeepDecision
from mlfilter.records import (
    RecordFormatError,
    RecordWriter,
    expand_inputs,
    is_remote,
    iter_records,
    open_binary,
    record_format,
)
from mlfilter.scores import to_int_score

#: Part of every scoring fingerprint: bumped when the scores files change shape, so old ones are rescored, never
#: read under new rules (2: the ``labels`` field, a classification head's argmax).
FORMAT_VERSION = 2
MARKER_SUFFIX = ".done"
ATTRIBUTES_SUFFIX = ".jsonl.zst"
SCORE_DECIMALS = 6
#: The reason an empty or whitespace-only document is dropped (the annotate and train stages use it too).
EMPTY_TEXT = "empty_text"
_RECORD_SUFFIXES = (".jsonl", ".json", ".ndjson", ".parquet")
_COMPRESSION_SUFFIXES = (".gz", ".zst")


class ShardError(MlfilterError):
    """A shard could not be processed (corrupt file, input changed since scoring, …)."""


@dataclass(frozen=True)
class ShardJob:
    """One input shard and the files it produces, under the same relative name."""

    index: int
    source: str
    name: str
    output: Path
    attributes: Path

    @property
    def output_marker(self) -> Path:
        """Completion marker of the kept-documents file."""
        return marker_path(self.output.parents[len(Path(self.name).parts) - 1], self.output)

    @property
    def attributes_marker(self) -> Path:
        """Completion marker of the scores file."""
        return marker_path(self.attributes.parents[len(Path(self.name).parts) - 1], self.attributes)


@dataclass(frozen=True)
class ShardSettings:
    """What a worker needs to score or filter a shard (picklable, shared by all shards of a run)."""

    task_names: tuple[str, ...]
    histogram_edges: tuple[tuple[float, ...], ...]
    scoring_fingerprint: str
    fields: dict[str, str] = field(default_factory=dict)
    on_bad_record: str = "skip"
    score_field: str = "scores"
    window: int = 4096
    #: Arrow schema of every Parquet output shard (the input's plus the score column); None without Parquet.
    parquet_schema: Any = None
    #: Labels per task (``0 .. K-1``), for the rounded ``<task>_int_score`` fields; empty: no named fields.
    num_targets: tuple[int, ...] = ()


def named_scores(
    task_names: Sequence[str],
    num_targets: Sequence[int],
    scores: Sequence[float | None],
    labels: Sequence[float | None] | None = None,
) -> dict:
    """``<task>_score`` and ``<task>_int_score`` per task, as FineWeb-Edu's and the peers' tools name them; None
    where a score is missing. ``int_score`` is the classification head's argmax label when ``labels`` is given,
    else the score rounded half up (:func:`mlfilter.scores.to_int_score`)."""
    fields: dict[str, float | int | None] = {}
    for index, (name, k, value) in enumerate(zip(task_names, num_targets, scores, strict=True)):
        missing = value is None or not np.isfinite(value)
        fields[f"{name}_score"] = None if missing else value
        label = value if labels is None else labels[index]
        fields[f"{name}_int_score"] = None if missing or label is None else int(to_int_score(label, k))
    return fields


@dataclass
class ShardOutcome:
    """What happened to one shard in one step of this run."""

    index: int
    step: str
    error: str | None = None
    documents: int = 0
    tokens: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the step finished and wrote its marker."""
        return self.error is None


def markers_dir(folder: Path) -> Path:
    """``parent/.<name>.markers`` for the output folder ``parent/<name>``: beside it, not inside it."""
    return folder.with_name(f".{folder.name}.markers")


def marker_path(folder: Path, data: Path) -> Path:
    """The marker of ``data`` (a file below ``folder``): ``markers_dir(folder)/<relative path>.done``."""
    return markers_dir(folder) / f"{data.relative_to(folder)}{MARKER_SUFFIX}"


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _strip_record_suffix(name: str) -> str:
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for suffix in _RECORD_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def relative_names(sources: Sequence[str]) -> list[str]:
    """Shard names relative to the deepest folder holding all sources (URL schemes ignored)."""
    paths = [s.split("://", 1)[1] if is_remote(s) else os.path.abspath(s) for s in sources]
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    return [os.path.relpath(p, root) if root else os.path.basename(p) for p in paths]


def plan_shards(inputs: Iterable[str], output_dir: str | Path, attributes_dir: str | Path) -> list[ShardJob]:
    """One job per input record file (sorted), with output and attribute paths of the same name.

    Raises when the output folders overlap each other or the input (a rerun would read its own output).
    """
    output_dir, attributes_dir = Path(output_dir), Path(attributes_dir)
    folders = [output_dir.resolve(), attributes_dir.resolve()]
    if folders[0] == folders[1] or folders[0] in folders[1].parents or folders[1] in folders[0].parents:
        raise MlfilterError(f"{output_dir}, {attributes_dir}: the output and attributes folders must be separate")
    sources = expand_inputs(inputs)
    jobs = []
    seen: dict[Path, str] = {}
    for index, (source, name) in enumerate(zip(sources, relative_names(sources), strict=True)):
        if not is_remote(source):
            resolved = Path(source).resolve()
            if any(folder == resolved or folder in resolved.parents for folder in folders):
                raise MlfilterError(f"{source}: an input file lies inside the output folders")
        attributes = attributes_dir / (_strip_record_suffix(name) + ATTRIBUTES_SUFFIX)
        if attributes in seen:
            raise MlfilterError(f"{seen[attributes]} and {source}: both would write their scores to {attributes}")
        seen[attributes] = source
        jobs.append(ShardJob(index, source, name, output_dir / name, attributes))
    return jobs


def source_identity(source: str) -> str:
    """Size and modification time (or ETag) of an input file: changes when the file does."""
    if is_remote(source):
        import fsspec

        fs, path = fsspec.core.url_to_fs(source)
        info = fs.info(path)
        stamp = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime")
        return f"{info.get('size')}:{stamp}"
    stat = os.stat(source)
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def source_fingerprints(jobs: Sequence[ShardJob], scoring_fingerprint: str) -> dict[int, str]:
    """The scoring fingerprint of each shard: model and options plus the input file's identity."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        identities = list(pool.map(lambda job: source_identity(job.source), jobs))
    return {
        job.index: _digest(f"{scoring_fingerprint}|{job.source}|{identity}")
        for job, identity in zip(jobs, identities, strict=True)
    }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def model_digest(model_path: str) -> str:
    """A content hash of every file of a saved model folder."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_path).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(model_path)).encode())
            with open(path, "rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:20]


def scoring_fingerprint(model_path: str, options: dict[str, Any]) -> str:
    """A digest of the model and of every option that changes scores."""
    return _digest(f"v{FORMAT_VERSION}|{model_digest(model_path)}|{json.dumps(options, sort_keys=True)}")


def read_marker(path: Path) -> dict[str, Any] | None:
    """A marker's content, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            marker = json.load(handle)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def marker_matches(path: Path, fingerprint: str, data: Path) -> bool:
    """True when the marker exists, was written for ``fingerprint`` and ``data`` is the file it vouches for."""
    marker = read_marker(path)
    if marker is None or marker.get("fingerprint") != fingerprint:
        return False
    try:
        return marker.get("sha256") == file_sha256(data)
    except OSError:
        return False


def remove_leftovers(job: ShardJob) -> None:
    """Delete temporary files a killed run left for this shard (they are hidden from readers)."""
    for path in (job.output, job.attributes):
        for leftover in globlib.glob(os.path.join(globlib.escape(str(path.parent)), f".{path.name}.tmp-*")):
            Path(leftover).unlink(missing_ok=True)


def remove_orphans(folder: Path, planned: set[Path]) -> list[Path]:
    """Delete files (and their markers) that an earlier run wrote for shards no longer in the input.

    Markers that older versions wrote inside the folder (``_<name>.done``) are deleted too.
    """
    removed = []
    for legacy in folder.rglob(f"_*{MARKER_SUFFIX}") if folder.is_dir() else []:
        legacy.unlink()
    markers = markers_dir(folder)
    for marker in sorted(markers.rglob(f"*{MARKER_SUFFIX}")) if markers.is_dir() else []:
        data = folder / str(marker.relative_to(markers))[: -len(MARKER_SUFFIX)]
        if data not in planned:
            data.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
            removed.append(data)
    return removed


class ShardReader:
    """Valid documents of one shard with their original records; bad records counted by reason.

    Iterating raises :class:`ShardError` when the file turns out corrupt or truncated, and
    :class:`~mlfilter.records.RecordFormatError` on a bad record when ``on_bad_record="raise"``.
    """

    def __init__(self, source: str, fields: dict[str, str], on_bad_record: str) -> None:
        self.source = source
        self.fields = fields
        self.on_bad_record = on_bad_record
        self.dropped: Counter[str] = Counter()
        self.documents = 0

    def __iter__(self) -> Iterator[tuple[dict[str, Any], Document]]:
        skipped: Counter[str] = Counter()
        last_line = 0
        for location, record in iter_records(self.source, on_error=self.on_bad_record, skipped=skipped):  # type: ignore[arg-type]
            last_line = location.line
            try:
                document = document_from_record(record, location, self.fields)
            except RecordFormatError as exc:
                if self.on_bad_record == "raise":
                    raise
                skipped[exc.reason] += 1
                continue
            self.documents += 1
            yield record, document
        skipped.pop("invalid_utf8_replaced", None)
        if skipped.pop("corrupt_file", 0):
            self.dropped.update(skipped)
            raise ShardError(f"{self.source}: corrupt or truncated file after line {last_line}")
        self.dropped.update(skipped)

    @property
    def seen(self) -> int:
        """Documents (valid or not) read so far."""
        return self.documents + sum(self.dropped.values())


def parquet_output_schema(
    jobs: Sequence[ShardJob], score_field: str, policy: str, task_names: Sequence[str] = ()
) -> Any:
    """The Arrow schema of the Parquet output shards: the inputs' schema plus ``score_field`` (list of float64)
    and, per task of ``task_names``, ``<task>_score`` (float64) and ``<task>_int_score`` (int64).

    Reads only the footers. ``policy`` ``same``: every Parquet input must have the first one's schema, else
    :class:`ShardError` names both files; ``unify``: the union of all their schemas. None without Parquet input.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    sources = [job.source for job in jobs if record_format(job.source) == "parquet"]
    schemas = []
    for source in sources:
        with open_binary(source) as handle:
            schemas.append(pq.read_schema(handle).remove_metadata())
    if not schemas:
        return None
    for source, schema in zip(sources[1:], schemas[1:], strict=True):
        if policy == "same" and not schema.equals(schemas[0]):
            raise ShardError(
                f"{sources[0]} and {source} have different Parquet schemas ({_schema_difference(schemas[0], schema)}); "
                "make them agree, or set filter.parquet_schema: unify to write both with the union of their columns"
            )
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ShardError(f"the Parquet inputs' schemas cannot be unified: {exc}") from None
    added = [pa.field(score_field, pa.list_(pa.float64()))]
    for name in task_names:
        added += [pa.field(f"{name}_score", pa.float64()), pa.field(f"{name}_int_score", pa.int64())]
    for column in added:
        index = schema.get_field_index(column.name)
        schema = schema.set(index, column) if index >= 0 else schema.append(column)
    return schema


def _schema_difference(first: Any, second: Any) -> str:
    for name in dict.fromkeys([*first.names, *second.names]):
        a = first.field(name).type if name in first.names else "missing"
        b = second.field(name).type if name in second.names else "missing"
        if str(a) != str(b):
            return f"column {name!r}: {a} vs {b}"
    return "column order or nullability"


def windows_of(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    window: list[Any] = []
    for item in items:
        window.append(item)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def histogram_edges(num_targets_per_task: Sequence[int], step: float) -> tuple[tuple[float, ...], ...]:
    """Score bin edges per task: ``0, step, …, K-1`` for a task with labels ``0..K-1``."""
    return tuple(
        tuple(float(x) for x in np.round(np.arange(0.0, k - 1 + step / 2, step), 10)) for k in num_targets_per_task
    )


class ShardStats:
    """Documents, tokens and score histograms (documents and tokens per bin) by language."""

    def __init__(self, task_names: Sequence[str], edges: Sequence[Sequence[float]]) -> None:
        self.task_names = list(task_names)
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        self.languages: dict[str, dict[str, Any]] = {}

    def _language(self, name: str) -> dict[str, Any]:
        if name not in self.languages:
            self.languages[name] = {
                "documents": 0,
                "tokens": 0,
                "score_sums": [0.0] * len(self.task_names),
                "histogram": {
                    task: {"documents": [0] * (len(e) + 1), "tokens": [0] * (len(e) + 1)}
                    for task, e in zip(self.task_names, self.edges, strict=True)
                },
            }
        return self.languages[name]

    def add(self, scores: np.ndarray, tokens: np.ndarray, languages: Sequence[str | None]) -> None:
        """Count documents with their (rounded) scores, token lengths and languages."""
        names = np.asarray([lang or UNKNOWN_LANGUAGE for lang in languages], dtype=object)
        for name in np.unique(names) if len(names) else []:
            rows = names == name
            entry = self._language(str(name))
            entry["documents"] += int(rows.sum())
            entry["tokens"] += int(tokens[rows].sum())
            for t, task in enumerate(self.task_names):
                column = scores[rows, t]
                entry["score_sums"][t] += float(column.sum())
                bins = np.searchsorted(self.edges[t], column, side="right")
                counts = np.bincount(bins, minlength=len(self.edges[t]) + 1)
                weights = np.bincount(bins, weights=tokens[rows], minlength=len(self.edges[t]) + 1)
                histogram = entry["histogram"][task]
                histogram["documents"] = [a + int(b) for a, b in zip(histogram["documents"], counts, strict=True)]
                histogram["tokens"] = [a + int(b) for a, b in zip(histogram["tokens"], weights, strict=True)]

    def as_dict(self) -> dict[str, Any]:
        """The statistics as stored in a marker."""
        return dict(sorted(self.languages.items()))


def is_empty_text(text: str) -> bool:
    """True for a text with nothing to score: empty or whitespace only."""
    return not text.strip()


def round_scores(scores: np.ndarray) -> np.ndarray:
    """Scores as written to files: float64 rounded to :data:`SCORE_DECIMALS` decimals."""
    return np.round(scores.astype(np.float64), SCORE_DECIMALS)


class AttributeWriter:
    """Writes one shard's scores file and then, last, its completion marker."""

    def __init__(self, job: ShardJob, settings: ShardSettings, fingerprint: str) -> None:
        job.attributes_marker.unlink(missing_ok=True)
        self.job = job
        self.fingerprint = fingerprint
        self.stats = ShardStats(settings.task_names, settings.histogram_edges)
        self.writer = RecordWriter(job.attributes)
        self.tokens = 0
        self.empty = 0

    def add(
        self,
        ids: Sequence[str],
        languages: Sequence[str | None],
        scores: np.ndarray,
        tokens: np.ndarray,
        empty: np.ndarray,
        labels: np.ndarray | None = None,
    ) -> None:
        """Append the scores ``[n, tasks]`` of consecutive documents, and the argmax ``labels`` ``[n, tasks]`` of a
        classification head when given (``labels`` field); rows flagged ``empty`` get ``null`` scores and labels."""
        rounded = round_scores(scores)
        nulls = [None] * rounded.shape[1]
        label_rows = [None] * len(ids) if labels is None else [_labels_row(row) for row in labels.tolist()]
        for doc_id, language, count, row, label_row, blank in zip(
            ids, languages, tokens.tolist(), rounded.tolist(), label_rows, empty.tolist(), strict=True
        ):
            record = {"id": doc_id, "language": language, "tokens": count, "scores": nulls if blank else row}
            if labels is not None:
                record["labels"] = nulls if blank else label_row
            self.writer.write(record)
        scored = ~empty
        self.stats.add(rounded[scored], tokens[scored], [lang for lang, s in zip(languages, scored, strict=True) if s])
        self.tokens += int(tokens.sum())
        self.empty += int(empty.sum())

    def finish(self, dropped: Counter[str], seconds: float) -> ShardOutcome:
        """Close the scores file, then write the marker."""
        self.writer.close()
        write_json(
            self.job.attributes_marker,
            {
                "fingerprint": self.fingerprint,
                "source": self.job.source,
                "documents": self.writer.count,
                "empty": self.empty,
                "tokens": self.tokens,
                "dropped": dict(sorted(dropped.items())),
                "languages": self.stats.as_dict(),
                "sha256": file_sha256(self.job.attributes),
            },
        )
        return ShardOutcome(self.job.index, "score", None, self.writer.count, self.tokens, seconds)

    def abort(self) -> None:
        """Drop the unfinished scores file."""
        self.writer.abort()


def _labels_row(row: Sequence[float]) -> list[int | None]:
    return [None if not np.isfinite(value) else int(value) for value in row]


def score_shard(
    job: ShardJob,
    settings: ShardSettings,
    fingerprint: str,
    scorer: Any,
    on_documents: Callable[[int], None] | None = None,
) -> ShardOutcome:
    """Step 1 for one shard: score every valid document into the attributes file, then the marker.

    ``on_documents(n)`` is told of every ``n`` further documents scored."""
    start = time.perf_counter()
    remove_leftovers(job)
    reader = ShardReader(job.source, settings.fields, settings.on_bad_record)
    writer = AttributeWriter(job, settings, fingerprint)
    try:
        for items, scored in scorer.score_stream(windows_of(reader, settings.window), lambda item: item[1].text):
            docs = [document for _, document in items]
            empty = np.fromiter((is_empty_text(d.text) for d in docs), bool, len(docs))
            labels = getattr(scored, "labels", None)
            writer.add([d.id for d in docs], [d.language for d in docs], scored.scores, scored.tokens, empty, labels)
            if on_documents is not None:
                on_documents(len(docs))
    except (MlfilterError, OSError) as exc:
        writer.abort()
        return ShardOutcome(job.index, "score", str(exc), reader.seen, 0, time.perf_counter() - start)
    except BaseException:
        writer.abort()
        raise
    return writer.finish(reader.dropped, time.perf_counter() - start)


def iter_attributes(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a scores file."""
    for _, record in iter_records(str(path)):
        yield record


def apply_shard(job: ShardJob, settings: ShardSettings, decision: KeepDecision, fingerprint: str) -> ShardOutcome:
    """Step 2 for one shard: write the documents the decision keeps, with their scores, then the marker."""
    start = time.perf_counter()
    job.output_marker.unlink(missing_ok=True)
    remove_leftovers(job)
    reader = ShardReader(job.source, settings.fields, settings.on_bad_record)
    kept_by_language: dict[str, list[int]] = {}
    dropped: Counter[str] = Counter()
    parquet = record_format(str(job.output)) == "parquet"
    writer = RecordWriter(job.output, schema=settings.parquet_schema if parquet else None)
    try:
        attributes = iter_attributes(job.attributes)
        offset = 0
        for items in windows_of(zip(reader, attributes, strict=False), settings.window):
            for (_, document), attribute in items:
                if attribute.get("id") != document.id:
                    raise ShardError(
                        f"{job.source}: document {document.id!r} does not match its scores file "
                        f"{job.attributes} (the input changed since it was scored)"
                    )
            scores = np.asarray([a["scores"] for _, a in items], dtype=np.float64).reshape(len(items), -1)
            labels = None
            if items and "labels" in items[0][1]:
                rows = [[np.nan if v is None else v for v in a["labels"]] for _, a in items]
                labels = np.asarray(rows, dtype=np.float64).reshape(len(items), -1)
            keep = decision.keeps(scores, offset, labels)
            offset += len(items)
            for ((record, document), attribute), kept in zip(items, keep.tolist(), strict=True):
                if is_empty_text(document.text) and decision.rule != "all":
                    dropped[EMPTY_TEXT] += 1
                    continue
                if not kept:
                    dropped[decision.drop_reason] += 1
                    continue
                named = named_scores(
                    settings.task_names, settings.num_targets, attribute["scores"], attribute.get("labels")
                )
                writer.write({**record, settings.score_field: attribute["scores"], **named})
                counts = kept_by_language.setdefault(document.language or UNKNOWN_LANGUAGE, [0, 0])
                counts[0] += 1
                counts[1] += int(attribute["tokens"])
        if next(attributes, None) is not None or offset != reader.documents:
            raise ShardError(f"{job.source}: its scores file {job.attributes} has a different number of documents")
        decision.check_size(offset)
        writer.close()
    except (MlfilterError, OSError) as exc:
        writer.abort()
        return ShardOutcome(job.index, "apply", str(exc), reader.seen, 0, time.perf_counter() - start)
    except BaseException:
        writer.abort()
        raise
    kept_tokens = sum(tokens for _, tokens in kept_by_language.values())
    write_json(
        job.output_marker,
        {
            "fingerprint": fingerprint,
            "source": job.source,
            "kept": writer.count,
            "kept_tokens": kept_tokens,
            "dropped": dict(sorted(dropped.items())),
            "kept_by_language": dict(sorted(kept_by_language.items())),
            "sha256": file_sha256(job.output),
        },
    )
    return ShardOutcome(job.index, "apply", None, writer.count, kept_tokens, time.perf_counter() - start)


@dataclass
class AttributeTable:
    """Rank scores, token lengths and languages of every scored document, shard after shard."""

    scores: np.ndarray
    tokens: np.ndarray
    languages: list[str | None]
    shard_sizes: dict[int, int] = field(default_factory=dict)


def read_attribute_table(jobs: Sequence[ShardJob], task_index: int) -> AttributeTable:
    """Load the scores (of one task) of all shards in shard order, for rules that rank the whole corpus."""
    scores: list[float] = []
    tokens: list[int] = []
    languages: list[str | None] = []
    sizes = {}
    for job in jobs:
        before = len(scores)
        for record in iter_attributes(job.attributes):
            scores.append(record["scores"][task_index])
            tokens.append(record["tokens"])
            languages.append(record.get("language"))
        sizes[job.index] = len(scores) - before
    return AttributeTable(np.asarray(scores, dtype=np.float64), np.asarray(tokens, dtype=np.int64), languages, sizes)
