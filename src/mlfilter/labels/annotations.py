"""The one annotation reader, shared by the aggregate and evaluate stages: records of ours and of the
original tool, parsed, checked and counted.

Two record formats are read, one JSON object per line, told apart by their id field:

- **mlfilter** (written by the annotate stage): ``id``, ``annotator``, ``scores`` = ``{task: [score or
  null per generation]}``; other fields (``status``, ``replies``, …) are not needed here.
- **original tool**: ``document_id``, ``scores`` = ``[score or null per generation]`` for one task,
  ``explanation``/``explanations``, ``meta_information`` with ``model_name`` (older files: ``model``),
  the annotator, and ``prompt_name`` (older files: ``prompt``), which names the task (see
  :class:`TaskResolver`).

Reference (gold) files may also use the label format: ``id`` and ``scores`` = one value per task in
task order. Scores are in each task's label space ``0 .. num_targets - 1``; ``null`` is an invalid
generation. Nothing is dropped silently: every record and every score is counted under a reason.

:class:`AnnotationReader` walks the inputs and yields each used record's scores; :func:`read_annotations`
(aggregate) collects them into a :class:`ScoreTable`, :func:`mlfilter.evaluation.ratings.load_ratings`
(evaluate) into rating tables.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.errors import MlfilterError
from mlfilter.labels.params import AggregateParams
from mlfilter.logs import progress
from mlfilter.params import TaskParams
from mlfilter.records import OnError, RecordFormatError, RecordLocation, count_records, expand_inputs, iter_records

log = logging.getLogger(__name__)

#: Reasons the record reader counts for records it repaired and passed on (not dropped).
REPAIRED = frozenset({"invalid_utf8_replaced"})
#: Reasons a record is dropped, and what a score can be; reported even when zero.
RECORD_REASONS = ("unknown_id", "duplicate_annotation", "invalid_record")
SCORE_REASONS = ("valid", "null_score", "out_of_range_score")
#: Where the folders of annotators removed from params.yaml are moved (untracked; also in the DVC cache).
SET_ASIDE = Path(".mlfilter/removed-annotations")


class TaskResolver:
    """Maps task names found in records to positions in the shared task list.

    The original tool names a task by its prompt (``meta_information.prompt_name``); ``task_names``
    maps such names to ours, and with a single task every prompt name maps to it.
    """

    def __init__(self, tasks: Sequence[TaskParams], task_names: Mapping[str, str] | None = None) -> None:
        self.tasks = tuple(tasks)
        self.index = {task.name: i for i, task in enumerate(self.tasks)}
        self.task_names = dict(task_names or {})
        unknown = sorted(target for target in self.task_names.values() if target not in self.index)
        if unknown:
            raise MlfilterError(f"aggregate.task_names: {unknown[0]!r} is not a task; tasks: {', '.join(self.index)}")

    def resolve(self, name: str | None) -> int | None:
        """The position of the task called ``name`` in a record of ours, or None when there is none."""
        return self.index.get(name) if name is not None else None

    def resolve_prompt(self, prompt_name: str | None) -> int | None:
        """The position of the task an original-format record's prompt name stands for."""
        if prompt_name is not None and prompt_name in self.task_names:
            return self.index[self.task_names[prompt_name]]
        if prompt_name is not None and prompt_name in self.index:
            return self.index[prompt_name]
        return 0 if len(self.tasks) == 1 else None


@dataclass
class ParsedScores:
    """The scores one record gives one document: ``{task position: [score or None, ...]}``."""

    doc_id: str
    annotator: str | None
    scores: dict[int, list[float | None]]
    unknown_tasks: dict[str, int] = field(default_factory=dict)


def _fail(location: RecordLocation, message: str) -> RecordFormatError:
    return RecordFormatError(location.path, location.line, message, "invalid_record")


def _string_field(record: Mapping[str, Any], key: str, location: RecordLocation, prefix: str = "") -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _fail(location, f"field '{prefix}{key}' must be a string, got {type(value).__name__}")
    return value


_SCORE_TYPES = frozenset({int, float, type(None)})


def _score_list(value: Any, location: RecordLocation, where: str, *, scalar_ok: bool) -> list[float | None]:
    values = [value] if scalar_ok and not isinstance(value, list) else value
    if not isinstance(values, list):
        raise _fail(location, f"field '{where}' must be a list of scores, got {type(value).__name__}")
    for i, score in enumerate(values):
        if type(score) not in _SCORE_TYPES:  # exact types: a bool is no score
            raise _fail(location, f"field '{where}[{i}]' must be a number or null, got {score!r}")
    return values


def parse_scores_record(
    record: Mapping[str, Any], location: RecordLocation, resolver: TaskResolver, *, gold: bool = False
) -> ParsedScores:
    """Validate one annotation (or, with ``gold``, reference) record of either format.

    Raises :class:`~mlfilter.records.RecordFormatError` naming file, line and field when a required
    field is missing or mistyped. Scores of tasks that are not in the task list are counted in
    ``unknown_tasks`` and left out.
    """
    if "document_id" in record:
        return _parse_original(record, location, resolver, gold=gold)
    doc_id = _string_field(record, "id", location)
    if doc_id is None:
        raise _fail(location, "field 'id' (or the original tool's 'document_id') is missing")
    annotator = _string_field(record, "annotator", location)
    if annotator is None and not gold:
        raise _fail(location, "field 'annotator' is missing")
    raw = record.get("scores")
    parsed = ParsedScores(doc_id, annotator, {})
    if gold and isinstance(raw, list):
        if len(raw) != len(resolver.tasks):
            raise _fail(location, f"field 'scores' must hold one value per task ({len(resolver.tasks)}), got {raw!r}")
        for position, value in enumerate(raw):
            parsed.scores[position] = _score_list(value, location, f"scores[{position}]", scalar_ok=True)
        return parsed
    if not isinstance(raw, dict):
        raise _fail(location, f"field 'scores' must be an object of task → scores, got {type(raw).__name__}")
    for name, value in raw.items():
        scores = _score_list(value, location, f"scores.{name}", scalar_ok=gold)
        position = resolver.resolve(name)
        if position is None:
            parsed.unknown_tasks[name] = parsed.unknown_tasks.get(name, 0) + len(scores)
        else:
            parsed.scores[position] = scores
    return parsed


def _parse_original(
    record: Mapping[str, Any], location: RecordLocation, resolver: TaskResolver, *, gold: bool
) -> ParsedScores:
    doc_id = _string_field(record, "document_id", location)
    if doc_id is None:
        raise _fail(location, "field 'document_id' is empty")
    meta = record.get("meta_information") or {}
    if not isinstance(meta, dict):
        raise _fail(location, f"field 'meta_information' must be an object, got {type(meta).__name__}")
    annotator = _string_field(meta, "model_name", location, "meta_information.") or _string_field(
        meta, "model", location, "meta_information."
    )
    if annotator is None and not gold:
        raise _fail(location, "field 'meta_information.model_name' is missing")
    prompt_name = _string_field(meta, "prompt_name", location, "meta_information.") or _string_field(
        meta, "prompt", location, "meta_information."
    )
    if "scores" not in record:
        raise _fail(location, "field 'scores' is missing")
    scores = _score_list(record["scores"], location, "scores", scalar_ok=False)
    parsed = ParsedScores(doc_id, annotator, {})
    position = resolver.resolve_prompt(prompt_name)
    if position is None:
        parsed.unknown_tasks[prompt_name or "<no prompt_name>"] = len(scores)
    else:
        parsed.scores[position] = scores
    return parsed


def valid_score(score: float | None, num_targets: int) -> str | None:
    """None for a valid score, else the reason it is not: ``null_score`` or ``out_of_range_score``."""
    if score is None:
        return "null_score"
    if not 0 <= score <= num_targets - 1:
        return "out_of_range_score"
    return None


def input_label(path: str) -> str:
    """A short name for an input: its file name without record suffixes, or its folder name."""
    name = Path(path.rstrip("/")).name
    return _RECORD_SUFFIX.sub("", name) or name


_RECORD_SUFFIX = re.compile(r"(\.(jsonl|json|ndjson|parquet))?(\.(gz|zst))?$")


def null_statuses(record: Mapping[str, Any], task: str) -> list[Any]:
    """Per-generation statuses of a record: ours (``status`` per task) or the original tool's
    (``document_processing_status``, a list or one value for every generation); ``[]`` when absent."""
    if "document_id" in record:
        value = record.get("document_processing_status")
        if isinstance(value, str):
            return [value] * len(record.get("scores") or [])
        return value if isinstance(value, list) else []
    statuses = record.get("status")
    value = statuses.get(task) if isinstance(statuses, dict) else None
    return value if isinstance(value, list) else []


def record_language(record: Mapping[str, Any]) -> str | None:
    """The language a record names: ours (``language``) or the original tool's (``meta_information.prompt_lang``)."""
    language = record.get("language")
    if isinstance(language, str) and language:
        return language
    meta = record.get("meta_information")
    if isinstance(meta, dict) and isinstance(meta.get("prompt_lang"), str) and meta["prompt_lang"]:
        return meta["prompt_lang"]
    return None


@dataclass
class RaterCounts:
    """Where one rater's generations for one task went: ``scores`` by reason (``valid``, ``null_score``,
    ``out_of_range_score``), ``statuses`` breaking null scores down by the annotate stage's status, and the
    documents the rater gave no valid score."""

    records: int = 0
    scores: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    documents_without_valid_score: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counts as the evaluate reports show them."""
        invalid = sum(n for reason, n in self.scores.items() if reason != "valid")
        return {
            "records": self.records,
            "generations": sum(self.scores.values()),
            "valid": self.scores.get("valid", 0),
            "invalid": invalid,
            "invalid_by_reason": {k: v for k, v in sorted(self.scores.items()) if k != "valid"},
            "null_by_status": dict(sorted(self.statuses.items())),
            "documents_without_valid_score": self.documents_without_valid_score,
        }


@dataclass
class AnnotationCounts:
    """Where every annotation record and every score went.

    ``records`` = ``used`` + the sum of ``dropped`` (record reasons, and the reader's line reasons such as
    ``invalid_json``); ``repaired``: lines passed on after a repair. ``raters[(rater, task)]``: the scores
    of each used record; ``rater_records[rater]``: its used records; ``unknown_tasks``: scores of tasks
    not in the task list, by name. ``rater_names`` is filled when reading ends.
    """

    records: int = 0
    used: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    raters: dict[tuple[int, int], RaterCounts] = field(default_factory=dict)
    rater_records: Counter[int] = field(default_factory=Counter)
    unknown_tasks: Counter[str] = field(default_factory=Counter)
    rater_names: list[str] = field(default_factory=list)

    def absorb_skipped(self, skipped: Counter[str]) -> None:
        """Add the lines the record reader skipped (bad JSON, bad UTF-8 …) as read and dropped."""
        for reason, n in skipped.items():
            if reason in REPAIRED:
                self.repaired[reason] += n
            else:
                self.records += n
                self.dropped[reason] += n

    @property
    def scores(self) -> Counter[str]:
        """Scores of used records by reason, over raters and tasks, plus ``unknown_task``."""
        total: Counter[str] = Counter()
        for counts in self.raters.values():
            total.update(counts.scores)
        if self.unknown_tasks:
            total["unknown_task"] = sum(self.unknown_tasks.values())
        return total

    @property
    def per_annotator(self) -> dict[str, Counter[str]]:
        """Rater name → its used ``records`` and its scores by reason over all tasks."""
        result: dict[str, Counter[str]] = {}
        for rater, n in self.rater_records.items():
            result[self.rater_names[rater]] = Counter(records=n)
        for (rater, _), counts in self.raters.items():
            result[self.rater_names[rater]].update(counts.scores)
        return result

    def as_dict(self) -> dict[str, Any]:
        """The counts as the aggregate report shows them (the usual reasons always, so metrics diffs line up)."""
        return {
            "records": self.records,
            "repaired": dict(sorted(self.repaired.items())),
            "used": self.used,
            "dropped": _with_keys(self.dropped, RECORD_REASONS),
            "scores": _with_keys(self.scores, SCORE_REASONS),
            "annotators": {name: _with_keys(c, SCORE_REASONS) for name, c in sorted(self.per_annotator.items())},
        }


def _with_keys(counts: Counter[str], keys: Sequence[str]) -> dict[str, int]:
    return {**dict.fromkeys(keys, 0), **dict(sorted(counts.items()))}


@dataclass(slots=True)
class Annotation:
    """What one used record gives: one rater's scores of one document.

    ``doc``: the document's position (in ``ids`` when the reader has them, else in order of first
    appearance); ``rater``: the position in :attr:`AnnotationReader.raters`; ``scores``: task position →
    one score per generation, ``None`` where the generation gave no valid score; ``record``: the record
    as read (for fields such as :func:`record_language`).
    """

    doc_id: str
    doc: int
    rater: int
    scores: dict[int, list[float | None]]
    record: dict[str, Any]


class AnnotationReader:
    """The one annotation reader: walks annotation inputs, parses every record, counts every skip.

    Used by the aggregate stage (:func:`read_annotations`) and the evaluate stage
    (:func:`mlfilter.evaluation.ratings.load_ratings`). A **rater** is an annotator (the record's
    ``annotator`` / ``meta_information.model_name``, else the input's :func:`input_label`) within one
    input; one annotator in several inputs is several raters, named ``name@input``.

    ``ids``: document id → position; records for other ids are dropped as ``unknown_id`` (None: every id
    is read). ``reference``: reference (gold) records: the label format is read too and the annotator is
    optional. ``pool``: several records of one rater for one document and task are all used (reference
    scores) instead of the first winning and the others counting as ``duplicate_annotation``.
    ``on_error``: a malformed line or record raises :class:`~mlfilter.records.RecordFormatError` naming
    file, line and field (``raise``), or is counted (``skip``: ``invalid_record``, ``invalid_json`` …).
    ``strict``: also raise :class:`MlfilterError` at an unknown id, a duplicate or an out-of-range score
    (null scores are always just counted).
    """

    def __init__(
        self,
        tasks: Sequence[TaskParams],
        *,
        task_names: Mapping[str, str] | None = None,
        ids: Mapping[str, int] | None = None,
        reference: bool = False,
        pool: bool = False,
        on_error: OnError = "raise",
        strict: bool = False,
    ) -> None:
        self.resolver = TaskResolver(tasks, task_names)
        self.tasks = self.resolver.tasks
        self.counts = AnnotationCounts()
        #: ``(input position, annotator)`` of each rater, in order of first use.
        self.raters: list[tuple[int, str]] = []
        #: Every annotation file read.
        self.files: list[str] = []
        self._ids = ids
        self._doc_index: dict[str, int] = {} if ids is None else dict(ids)
        self._reference, self._pool, self._on_error, self._strict = reference, pool, on_error, strict
        self._rater_index: dict[tuple[int, str], int] = {}
        self._labels: list[str] = []
        self._inputs: list[str] = []
        # (document, rater, task) triples already read, as single ints: a set of ints is compact.
        self._seen: set[int] = set()

    def read(self, inputs: Sequence[str]) -> Iterator[Annotation]:
        """Yield an :class:`Annotation` for every used record of ``inputs`` (files, folders or globs).

        The counts (:attr:`counts`) and rater names are complete once the iterator is exhausted.
        """
        skipped: Counter[str] = Counter()
        for pattern in inputs:
            self._inputs.append(pattern)
            self._labels.append(input_label(pattern))
            files = expand_inputs([pattern])
            self.files.extend(files)
            records = chain.from_iterable(iter_records(p, on_error=self._on_error, skipped=skipped) for p in files)
            desc = f"{self._labels[-1]}: annotation records"
            for location, record in progress(records, desc=desc, total=count_records(files), unit="record"):
                self.counts.records += 1
                annotation = self._annotation(record, location, len(self._inputs) - 1)
                if annotation is not None:
                    yield annotation
        self.counts.absorb_skipped(skipped)
        self.counts.rater_names = self.rater_names()

    def rater_names(self) -> list[str]:
        """The name of each rater: the annotator, or ``annotator@input`` when it occurs in several inputs."""
        inputs_of: dict[str, set[int]] = {}
        for index, annotator in self.raters:
            inputs_of.setdefault(annotator, set()).add(index)
        unique_labels = len(set(self._labels)) == len(self._labels)
        names = []
        for index, annotator in self.raters:
            if len(inputs_of[annotator]) > 1:
                names.append(f"{annotator}@{self._labels[index] if unique_labels else self._inputs[index]}")
            else:
                names.append(annotator)
        return names

    def _annotation(self, record: dict[str, Any], location: RecordLocation, index: int) -> Annotation | None:
        counts = self.counts
        try:
            parsed = parse_scores_record(record, location, self.resolver, gold=self._reference)
        except RecordFormatError:
            if self._on_error == "raise":
                raise
            counts.dropped["invalid_record"] += 1
            return None
        doc = self._doc_index.get(parsed.doc_id)
        if doc is None and self._ids is not None:
            if self._strict:
                raise MlfilterError(f"{location}: annotation for id {parsed.doc_id!r}, which is not in the sample")
            counts.dropped["unknown_id"] += 1
            return None
        if doc is None:
            doc = self._doc_index[parsed.doc_id] = len(self._doc_index)
        key = (index, parsed.annotator or self._labels[index])
        rater = self._rater_index.get(key, len(self.raters))
        if not self._pool:
            first_key = (doc << 32) + rater * len(self.tasks)
            keys = [first_key + task for task in parsed.scores]
            if not self._seen.isdisjoint(keys):
                if self._strict:
                    raise MlfilterError(f"{location}: second annotation by {key[1]!r} for id {parsed.doc_id!r}")
                counts.dropped["duplicate_annotation"] += 1
                return None
            self._seen.update(keys)
        if rater == len(self.raters):
            self._rater_index[key] = rater
            self.raters.append(key)
        for name, n in parsed.unknown_tasks.items():
            if name not in counts.unknown_tasks:
                log.warning("%s: task %r is not in the task list; its scores are counted and left out", location, name)
            counts.unknown_tasks[name] += n
        counts.used += 1
        counts.rater_records[rater] += 1
        scores = {task: self._checked(record, location, rater, task, s) for task, s in parsed.scores.items()}
        return Annotation(parsed.doc_id, doc, rater, scores, record)

    def _checked(
        self, record: Mapping[str, Any], location: RecordLocation, rater: int, position: int, scores: list[float | None]
    ) -> list[float | None]:
        """The scores with None for each invalid one, counted under its reason (and null status)."""
        task = self.tasks[position]
        counts = self.counts.raters.get((rater, position))
        if counts is None:
            counts = self.counts.raters[(rater, position)] = RaterCounts()
        counts.records += 1
        top = task.num_targets - 1
        if scores and None not in scores and min(scores) >= 0 and max(scores) <= top:  # type: ignore[type-var]
            counts.scores["valid"] += len(scores)  # all valid: what valid_score says of each, at once
            return scores
        kept: list[float | None] = []
        statuses: list[Any] | None = None
        for generation, score in enumerate(scores):
            problem = valid_score(score, task.num_targets)
            if problem == "out_of_range_score" and self._strict:
                raise RecordFormatError(
                    location.path,
                    location.line,
                    f"field 'scores.{task.name}[{generation}]': {score} is outside 0..{task.num_targets - 1}",
                    "out_of_range_score",
                )
            counts.scores[problem or "valid"] += 1
            if problem == "null_score":
                statuses = null_statuses(record, task.name) if statuses is None else statuses
                if generation < len(statuses):
                    counts.statuses[str(statuses[generation])] += 1
            kept.append(None if problem else score)
        if all(score is None for score in kept):
            counts.documents_without_valid_score += 1
        return kept


@dataclass
class ScoreTable:
    """Valid scores in long form: one row per (document, task, annotator, generation).

    ``doc`` indexes the documents (sample order), ``task`` the task list and ``annotator`` the
    ``annotators`` names.
    """

    doc: np.ndarray
    task: np.ndarray
    annotator: np.ndarray
    score: np.ndarray
    annotators: list[str]

    def __len__(self) -> int:
        return len(self.score)


class _TableBuilder:
    """Collects score rows in typed arrays (8 bytes a value, not a Python object each)."""

    def __init__(self) -> None:
        self.doc = array("q")
        self.task = array("q")
        self.annotator = array("q")
        self.score = array("d")

    def add(self, doc: int, task: int, annotator: int, scores: list[float]) -> None:
        n = len(scores)
        self.doc.extend([doc] * n)
        self.task.extend([task] * n)
        self.annotator.extend([annotator] * n)
        self.score.extend(scores)

    def build(self, annotators: list[str]) -> ScoreTable:
        return ScoreTable(
            doc=np.frombuffer(self.doc, dtype=np.int64),
            task=np.frombuffer(self.task, dtype=np.int64),
            annotator=np.frombuffer(self.annotator, dtype=np.int64),
            score=np.frombuffer(self.score, dtype=np.float64),
            annotators=annotators,
        )


def read_annotations(
    inputs: Iterable[str],
    doc_index: Mapping[str, int],
    tasks: Sequence[TaskParams],
    params: AggregateParams,
    *,
    gold: bool = False,
) -> tuple[ScoreTable, np.ndarray, AnnotationCounts]:
    """The aggregate stage's view of :class:`AnnotationReader`: every valid score below ``inputs`` in a
    :class:`ScoreTable`.

    ``doc_index`` maps the sample's ids to their positions. Returns the table, a boolean array
    marking documents that at least one record was used for, and the counts. Records for ids not in
    the sample (``unknown_id``), a second record of the same annotator for the same document and task
    (``duplicate_annotation``, the first one wins), malformed records (``invalid_record``,
    ``invalid_json`` …) and scores that are null (``null_score``) or outside ``0 .. num_targets - 1``
    (``out_of_range_score``, never clipped) are counted, or with ``on_bad_annotation: error`` raised
    as an error naming file, line and field (null scores are always just counted).

    With ``gold``, the records are reference annotations: the label format is read too, the
    annotator is optional (its input stands in) and several records for one document are pooled.
    """
    strict = params.on_bad_annotation == "error"
    reader = AnnotationReader(
        tasks,
        task_names=params.task_names,
        ids=doc_index,
        reference=gold,
        pool=gold,
        on_error="raise" if strict else "skip",
        strict=strict,
    )
    builder = _TableBuilder()
    annotated = np.zeros(len(doc_index), dtype=bool)
    for annotation in reader.read(list(inputs)):
        annotated[annotation.doc] = True
        for task, scores in annotation.scores.items():
            builder.add(annotation.doc, task, annotation.rater, [s for s in scores if s is not None])
    return builder.build(reader.rater_names()), annotated, reader.counts


def configured_annotations(
    root: str | os.PathLike[str], names: Iterable[str], *, set_aside: Path | None = SET_ASIDE
) -> list[str]:
    """The folders ``<root>/<name>`` of the configured annotators, in ``names`` order.

    Other folders under ``root`` (annotators removed from ``params.yaml``) are moved to
    ``set_aside/<name>`` (replacing an older copy there) unless ``set_aside`` is None, so the tracked
    folder holds the configured annotators only. Raises :class:`MlfilterError` naming the stage to run
    when a configured annotator has no folder.
    """
    root = Path(root)
    names = list(names)
    if set_aside is not None and root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.name not in names and not p.name.startswith(".")):
            target = set_aside / folder.name
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder), str(target))
            log.warning("%s: annotator %r is not in params.yaml; moved to %s", folder, folder.name, target)
    missing = [name for name in names if not (root / name).is_dir()]
    if missing:
        raise MlfilterError(
            f"{root / missing[0]}: no annotations of annotator {missing[0]!r}; run `dvc repro annotate@{missing[0]}`"
        )
    return [str(root / name) for name in names]
