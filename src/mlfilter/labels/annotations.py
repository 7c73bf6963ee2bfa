"""Read annotation records — ours and the original tool's — into a table of valid scores.

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
"""

from __future__ import annotations

import logging
import os
import shutil
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.errors import MlfilterError
from mlfilter.labels.params import AggregateParams
from mlfilter.logs import progress
from mlfilter.params import TaskParams
from mlfilter.records import RecordFormatError, RecordLocation, expand_inputs, iter_records

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


@dataclass
class AnnotationCounts:
    """Where every annotation record and every score went."""

    records: int = 0
    used: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    scores: Counter[str] = field(default_factory=Counter)
    per_annotator: dict[str, Counter[str]] = field(default_factory=dict)
    repaired: Counter[str] = field(default_factory=Counter)

    def absorb_skipped(self, skipped: Counter[str]) -> None:
        """Add the lines the record reader skipped (bad JSON, bad UTF-8 …) as read and dropped."""
        for reason, n in skipped.items():
            if reason in REPAIRED:
                self.repaired[reason] += n
            else:
                self.records += n
                self.dropped[reason] += n

    def as_dict(self) -> dict[str, Any]:
        """The counts as they appear in the report (the usual reasons always, so metrics diffs line up)."""
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


class _TableBuilder:
    """Collects score rows in typed arrays (8 bytes a value, not a Python object each)."""

    def __init__(self) -> None:
        self.doc = array("q")
        self.task = array("q")
        self.annotator = array("q")
        self.score = array("d")
        self.annotators: dict[str, int] = {}

    def annotator_index(self, name: str) -> int:
        return self.annotators.setdefault(name, len(self.annotators))

    def add(self, doc: int, task: int, annotator: int, scores: list[float]) -> None:
        n = len(scores)
        self.doc.extend([doc] * n)
        self.task.extend([task] * n)
        self.annotator.extend([annotator] * n)
        self.score.extend(scores)

    def build(self) -> ScoreTable:
        return ScoreTable(
            doc=np.frombuffer(self.doc, dtype=np.int64),
            task=np.frombuffer(self.task, dtype=np.int64),
            annotator=np.frombuffer(self.annotator, dtype=np.int64),
            score=np.frombuffer(self.score, dtype=np.float64),
            annotators=list(self.annotators),
        )


def valid_score(score: float | None, num_targets: int) -> str | None:
    """None for a valid score, else the reason it is not: ``null_score`` or ``out_of_range_score``."""
    if score is None:
        return "null_score"
    if not 0 <= score <= num_targets - 1:
        return "out_of_range_score"
    return None


def read_annotations(
    inputs: Iterable[str],
    doc_index: Mapping[str, int],
    tasks: Sequence[TaskParams],
    params: AggregateParams,
    *,
    gold: bool = False,
) -> tuple[ScoreTable, np.ndarray, AnnotationCounts]:
    """Read every annotation record below ``inputs`` into a :class:`ScoreTable` of valid scores.

    ``doc_index`` maps the sample's ids to their positions. Returns the table, a boolean array
    marking documents that at least one record was used for, and the counts. Records for ids not in
    the sample (``unknown_id``), a second record of the same annotator for the same document and task
    (``duplicate_annotation``, the first one wins), malformed records (``invalid_record``,
    ``invalid_json`` …) and scores that are null (``null_score``) or outside ``0 .. num_targets - 1``
    (``out_of_range_score``, never clipped) are counted, or with ``on_bad_annotation: error`` raised
    as an error naming file, line and field (null scores are always just counted).

    With ``gold``, the records are reference annotations: the label format is read too, the
    annotator is optional (its file stands in) and several records for one document are pooled.
    """
    resolver = TaskResolver(tasks, params.task_names)
    strict = params.on_bad_annotation == "error"
    counts = AnnotationCounts()
    builder = _TableBuilder()
    annotated = np.zeros(len(doc_index), dtype=bool)
    # (annotator, document, task) triples already read, as single ints: a set of ints is compact.
    seen: set[int] = set()
    n_docs, n_tasks = len(doc_index), len(tasks)
    warned_tasks: set[str] = set()
    skipped: Counter[str] = Counter()
    for path in progress(expand_inputs(inputs), desc="annotation files", unit="file"):
        for location, record in iter_records(path, on_error="raise" if strict else "skip", skipped=skipped):
            counts.records += 1
            try:
                parsed = parse_scores_record(record, location, resolver, gold=gold)
            except RecordFormatError:
                if strict:
                    raise
                counts.dropped["invalid_record"] += 1
                continue
            annotator = parsed.annotator or path
            first_key = (builder.annotator_index(annotator) * n_docs + doc_index.get(parsed.doc_id, 0)) * n_tasks
            reason = _record_problem(parsed, doc_index, first_key, None if gold else seen, location, strict)
            if reason is not None:
                counts.dropped[reason] += 1
                continue
            doc = doc_index[parsed.doc_id]
            _count_unknown_tasks(parsed, location, counts, warned_tasks)
            per_annotator = counts.per_annotator.get(annotator)
            if per_annotator is None:
                per_annotator = counts.per_annotator[annotator] = Counter()
            per_annotator["records"] += 1
            for task, scores in parsed.scores.items():
                seen.add(first_key + task)
                top = tasks[task].num_targets - 1
                valid = [score for score in scores if score is not None and 0 <= score <= top]
                nulls = scores.count(None)
                out_of_range = len(scores) - len(valid) - nulls
                if out_of_range and strict:
                    generation, score = next(
                        (i, x) for i, x in enumerate(scores) if x is not None and not 0 <= x <= top
                    )
                    raise RecordFormatError(
                        location.path,
                        location.line,
                        f"field 'scores.{tasks[task].name}[{generation}]': {score} is outside 0..{top}",
                        "out_of_range_score",
                    )
                for key, n in (("valid", len(valid)), ("null_score", nulls), ("out_of_range_score", out_of_range)):
                    if n:
                        counts.scores[key] += n
                        per_annotator[key] += n
                builder.add(doc, task, builder.annotators[annotator], valid)
            counts.used += 1
            annotated[doc] = True
    counts.absorb_skipped(skipped)
    return builder.build(), annotated, counts


def _count_unknown_tasks(
    parsed: ParsedScores, location: RecordLocation, counts: AnnotationCounts, warned: set[str]
) -> None:
    for name, n in parsed.unknown_tasks.items():
        counts.scores["unknown_task"] += n
        if name not in warned:
            warned.add(name)
            log.warning("%s: task %r is not in the task list; its scores are counted and left out", location, name)


def _record_problem(
    parsed: ParsedScores,
    doc_index: Mapping[str, int],
    first_key: int,
    seen: set[int] | None,
    location: RecordLocation,
    strict: bool,
) -> str | None:
    if parsed.doc_id not in doc_index:
        if strict:
            raise MlfilterError(f"{location}: annotation for id {parsed.doc_id!r}, which is not in the sample")
        return "unknown_id"
    if seen is not None and any(first_key + task in seen for task in parsed.scores):
        if strict:
            raise MlfilterError(f"{location}: second annotation by {parsed.annotator!r} for id {parsed.doc_id!r}")
        return "duplicate_annotation"
    return None


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
