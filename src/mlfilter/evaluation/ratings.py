"""Several raters' scores per document and task, read from annotation files of any supported format.

Records are read by :class:`mlfilter.labels.annotations.AnnotationReader`, the aggregate stage's
reader, so the same files work here: our annotation format (``id``, ``annotator``, ``scores`` per
task), the original tool's (``document_id``, ``scores`` per generation, ``meta_information`` with
``model_name`` and ``prompt_name``) and the label format (``id``, ``scores`` in task order).

A **rater** is one annotator (the record's ``annotator`` / ``meta_information.model_name``, else the
name of the input file or folder). With an ``aggregation`` each rater's generations for a document
become one score; without one every generation is a rater of its own (``name[0]``, ``name[1]`` …,
as the original tool compares the generations of a single file). When the same annotator name
occurs in two inputs (one file per model or prompt variant), raters are named ``name@input``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from mlfilter.errors import MlfilterError
from mlfilter.evaluation.params import Aggregation
from mlfilter.labels.aggregation import aggregate_task
from mlfilter.labels.annotations import AnnotationReader, RaterCounts, record_language
from mlfilter.logs import progress
from mlfilter.params import TaskParams
from mlfilter.records import OnError, count_records, expand_inputs, iter_records
from mlfilter.scores import round_half_up

log = logging.getLogger(__name__)

UNKNOWN_LANGUAGE = "unknown"


@dataclass(frozen=True)
class LabelSpace:
    """The labels of a task, ``0 .. num_targets - 1``, and its positive cut for binary metrics."""

    num_targets: int
    threshold: float | None = None

    @classmethod
    def of(cls, task: TaskParams) -> LabelSpace:
        """The label space of a task from ``params.yaml``."""
        return cls(task.num_targets, task.threshold)

    @property
    def classes(self) -> np.ndarray:
        """The labels as integers."""
        return np.arange(self.num_targets)

    def to_classes(self, values: np.ndarray) -> np.ndarray:
        """Scores rounded to the nearest label (halves up) and clipped into the space; NaN stays NaN."""
        return np.clip(round_half_up(values), 0, self.num_targets - 1)

    def thresholds(self) -> list[float]:
        """Every cut between two labels (``1 .. num_targets - 1``) plus the task's threshold."""
        cuts = {float(t) for t in range(1, self.num_targets)}
        if self.threshold is not None:
            cuts.add(float(self.threshold))
        return sorted(cuts)


def threshold_key(threshold: float) -> str:
    """``3.0`` → ``"3"``, ``2.5`` → ``"2.5"``: how thresholds are named in reports."""
    return f"{threshold:g}"


@dataclass
class RatingTable:
    """One task's scores: ``values[document, rater]`` with NaN where the rater gave no valid score."""

    task: str
    space: LabelSpace
    raters: list[str]
    doc_ids: list[str]
    values: np.ndarray
    languages: np.ndarray

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.doc_ids), len(self.raters)):
            raise ValueError(f"values shape {self.values.shape} ≠ ({len(self.doc_ids)}, {len(self.raters)})")

    def classes(self) -> np.ndarray:
        """The scores rounded to labels (NaN where missing)."""
        return self.space.to_classes(self.values)

    def column(self, rater: str) -> np.ndarray:
        """One rater's scores over all documents."""
        return self.values[:, self.raters.index(rater)]

    def rows(self, mask: np.ndarray) -> RatingTable:
        """The table restricted to some documents."""
        return RatingTable(
            self.task,
            self.space,
            list(self.raters),
            [d for d, keep in zip(self.doc_ids, mask, strict=True) if keep],
            self.values[mask],
            self.languages[mask],
        )

    def select(self, raters: Sequence[str]) -> RatingTable:
        """The table of some raters, keeping the documents at least one of them rated."""
        columns = [self.raters.index(r) for r in raters]
        values = self.values[:, columns]
        keep = ~np.isnan(values).all(axis=1)
        return RatingTable(
            self.task,
            self.space,
            list(raters),
            [d for d, k in zip(self.doc_ids, keep, strict=True) if k],
            values[keep],
            self.languages[keep],
        )


@dataclass
class Ratings:
    """Rating tables per task, with counts of every record and score read."""

    tables: dict[str, RatingTable]
    counts: dict[str, dict[str, RaterCounts]]
    records: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)

    def counts_dict(self) -> dict[str, Any]:
        """Record and per-annotator score counts for reports."""
        return {
            "files": len(self.files),
            "records": self.records,
            "dropped": dict(sorted(self.dropped.items())),
            "repaired": dict(sorted(self.repaired.items())),
            "annotators": {
                task: {rater: c.as_dict() for rater, c in sorted(per_rater.items())}
                for task, per_rater in self.counts.items()
            },
        }


def load_ratings(
    inputs: Sequence[str],
    tasks: Sequence[TaskParams],
    *,
    aggregation: Aggregation | None,
    task_names: Mapping[str, str] | None = None,
    languages: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
) -> Ratings:
    """Read annotation files (files, folders or globs; one input per annotator or several in one)
    into one :class:`RatingTable` per task, through the shared :class:`AnnotationReader`.

    ``task_names`` maps the original tool's prompt names to task names (with one task, every prompt
    maps to it). ``languages`` maps document ids to languages; records' own ``language`` (or the
    original tool's ``meta_information.prompt_lang``) is used otherwise. A malformed record raises a
    :class:`~mlfilter.records.RecordFormatError` naming file, line and field, or with
    ``on_error="skip"`` is counted. A second record of the same annotator for the same document and
    task is counted as ``duplicate_annotation`` (the first one wins, as in the aggregate stage); scores
    of tasks not in the task list as ``unknown_task:<name>``.
    """
    reader = AnnotationReader(tasks, task_names=task_names, reference=True, on_error=on_error)
    # (rater, task position) → document id → one score per generation (None = invalid).
    sources: dict[tuple[int, int], dict[str, list[float | None]]] = {}
    record_languages: dict[str, str] = {}
    for annotation in reader.read(inputs):
        language = record_language(annotation.record)
        if language is not None:
            record_languages.setdefault(annotation.doc_id, language)
        for position, scores in annotation.scores.items():
            sources.setdefault((annotation.rater, position), {})[annotation.doc_id] = scores
    counts = reader.counts
    dropped = counts.dropped + Counter({f"unknown_task:{name}": n for name, n in counts.unknown_tasks.items()})
    ratings = Ratings({}, {}, counts.records, dropped, Counter(counts.repaired), reader.files)
    names = counts.rater_names
    language_of = {**record_languages, **(languages or {})}
    for position, task in enumerate(tasks):
        task_sources = {names[rater]: docs for (rater, at), docs in sources.items() if at == position}
        if task_sources:
            ratings.counts[task.name] = {names[rater]: c for (rater, at), c in counts.raters.items() if at == position}
            ratings.tables[task.name] = _build_table(task, task_sources, aggregation, language_of)
    return ratings


@dataclass
class FoundTasks:
    """What annotation files name, read before knowing the tasks (no params file).

    ``tasks``: task names in our records, in order of appearance; ``prompts``: the prompt names our
    records give each task (``prompt.<task>.name``); ``original_prompts``: the prompt names of the
    original tool's records (``meta_information.prompt_name``; None when a record has none).
    """

    tasks: list[str] = field(default_factory=list)
    prompts: dict[str, set[str]] = field(default_factory=dict)
    original_prompts: set[str | None] = field(default_factory=set)

    def task_names(self) -> dict[str, str]:
        """The original tool's prompt names → our task names.

        A prompt name that is a task name needs no entry; one that is the prompt name our records give a
        task maps to that task; with a single task every other prompt name maps to it (with a log line).
        """
        mapping: dict[str, str] = {}
        for prompt in sorted(p for p in self.original_prompts if p is not None and p not in self.tasks):
            owners = [task for task in self.tasks if prompt in self.prompts.get(task, set())]
            if len(owners) == 1:
                mapping[prompt] = owners[0]
            elif len(self.tasks) == 1:
                log.info("original-format prompt %r is taken as task %r (the only task found)", prompt, self.tasks[0])
                mapping[prompt] = self.tasks[0]
        return mapping


def find_tasks(inputs: Sequence[str]) -> FoundTasks:
    """The task and prompt names annotation files carry (malformed lines are left to the real read)."""
    found = FoundTasks()
    for path in expand_inputs(inputs):
        for _, record in iter_records(path, on_error="skip"):
            if "document_id" in record:
                meta = record.get("meta_information")
                meta = meta if isinstance(meta, dict) else {}
                prompt = meta.get("prompt_name") or meta.get("prompt")
                found.original_prompts.add(str(prompt) if prompt is not None else None)
                continue
            scores, prompts = record.get("scores"), record.get("prompt")
            for task in scores if isinstance(scores, dict) else ():
                if task not in found.prompts:
                    found.tasks.append(task)
                    found.prompts[task] = set()
                entry = prompts.get(task) if isinstance(prompts, dict) else None
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    found.prompts[task].add(entry["name"])
    return found


def _build_table(
    task: TaskParams,
    task_sources: Mapping[str, Mapping[str, list[float | None]]],
    aggregation: Aggregation | None,
    language_of: Mapping[str, str],
) -> RatingTable:
    doc_ids = sorted({doc for scores in task_sources.values() for doc in scores})
    doc_index = {doc: i for i, doc in enumerate(doc_ids)}
    columns: dict[str, np.ndarray] = {}
    for name, scores in sorted(task_sources.items()):
        own = (
            _generation_columns(scores, doc_index) if aggregation is None else [_reduce(scores, doc_index, aggregation)]
        )
        for generation, column in enumerate(own):
            columns[name if len(own) == 1 else f"{name}[{generation}]"] = column
    values = np.column_stack(list(columns.values())) if columns else np.empty((len(doc_ids), 0))
    languages = np.array([language_of.get(d, UNKNOWN_LANGUAGE) for d in doc_ids], dtype=object)
    return RatingTable(task.name, LabelSpace.of(task), list(columns), doc_ids, values, languages)


def _generation_columns(scores: Mapping[str, list[float | None]], doc_index: Mapping[str, int]) -> list[np.ndarray]:
    """One column per generation index: the annotator's n-th valid score of each document."""
    generations = max((len(values) for values in scores.values()), default=0)
    columns = [np.full(len(doc_index), np.nan) for _ in range(generations)]
    for doc, values in scores.items():
        for generation, score in enumerate(values):
            if score is not None:
                columns[generation][doc_index[doc]] = score
    return columns


def _reduce(
    scores: Mapping[str, list[float | None]], doc_index: Mapping[str, int], aggregation: Aggregation
) -> np.ndarray:
    """One score per document from an annotator's valid generations (NaN where none is valid)."""
    docs = [doc_index[d] for d, values in scores.items() for s in values if s is not None]
    values = [s for doc_scores in scores.values() for s in doc_scores if s is not None]
    n = len(doc_index)
    if not values:
        return np.full(n, np.nan)
    doc = np.asarray(docs, dtype=np.int64)
    reduced = aggregate_task(
        doc,
        np.zeros_like(doc),
        np.asarray(values, dtype=np.float64),
        np.ones(len(doc)),
        n,
        method=aggregation,
        tie_break="mean",
        rounding="none",
    )
    return reduced.label


def require_raters(table: RatingTable, minimum: int = 2) -> None:
    """Raise a clear error when a task has fewer raters than agreement needs."""
    if len(table.raters) < minimum:
        found = ", ".join(table.raters) or "none"
        raise MlfilterError(
            f"task {table.task!r}: agreement needs at least {minimum} raters, found {len(table.raters)} ({found}); "
            "give the annotations of several annotators (one file or folder each, or one file holding several), "
            "or leave out --aggregation to compare the generations of one annotator"
        )


def load_languages(inputs: Sequence[str], id_field: str = "id") -> dict[str, str]:
    """Document id → language from document or label files (records without a language are skipped)."""
    languages: dict[str, str] = {}
    files = expand_inputs(inputs)
    records = chain.from_iterable(iter_records(path) for path in files)
    for _, record in progress(records, desc="documents: languages", total=count_records(files), unit="doc"):
        doc_id, language = record.get(id_field, record.get("document_id")), record.get("language")
        if doc_id is not None and isinstance(language, str) and language:
            languages[str(doc_id)] = language
    return languages
