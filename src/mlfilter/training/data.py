"""Labelled training data: the split files' text column and per-task label list, validated.

A record carries its text in ``text_column`` and its labels in ``label_column``: a list with one value
per task in task order (a bare number is accepted when there is one task). ``null``/NaN marks a
missing label, masked in the loss. Labels must lie in ``0..num_targets-1`` of their task.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.errors import MlfilterError
from mlfilter.logs import progress
from mlfilter.params import TaskParams
from mlfilter.records import RecordFormatError, RecordLocation, count_records, expand_inputs, iter_records
from mlfilter.reports import StageCounts
from mlfilter.scores import round_half_up
from mlfilter.weights import record_weight


@dataclass
class LabeledData:
    """Texts and their labels ``[n, num_tasks]`` (float32, NaN = missing), with per-reason accounting, and
    the records' inverse-probability ``weights`` ``[n]`` when any record has one (others weigh 1), else None."""

    texts: list[str]
    labels: np.ndarray
    ids: list[str | None]
    files: list[str]
    counts: StageCounts = field(default_factory=StageCounts)
    weights: np.ndarray | None = None
    #: The records' ``language`` (None where a record has none); empty when the data came from elsewhere.
    languages: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> str:
        """A hash of the texts, labels and weights, in order (keys the checkpoints of a run)."""
        digest = hashlib.sha256()
        for text in self.texts:
            digest.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        if self.weights is not None:
            digest.update(np.ascontiguousarray(self.weights).tobytes())
        return digest.hexdigest()

    def label_counts(self, task_index: int) -> dict[str, int]:
        """How many documents carry each (rounded) label of a task, and how many lack one."""
        column = self.labels[:, task_index]
        present = column[~np.isnan(column)]
        values, counts = np.unique(round_half_up(present).astype(int), return_counts=True)
        result = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
        result["missing"] = int(np.isnan(column).sum())
        return result


def read_labeled(
    inputs: str | Sequence[str],
    tasks: Sequence[TaskParams],
    text_column: str = "text",
    label_column: str = "scores",
    *,
    integer_labels: bool = False,
) -> LabeledData:
    """Read and validate labelled records from files, folders or globs.

    Bad records raise :class:`RecordFormatError` naming the file, line and field. With ``integer_labels``
    (classification heads) a fractional label such as 2.5 is an error too, rather than a class silently
    made of it. Documents with an empty text or with every label missing cannot teach anything: they are
    counted as dropped under ``empty_text`` / ``no_labels``.
    """
    files = expand_inputs([inputs] if isinstance(inputs, str) else list(inputs))
    if not files:
        raise MlfilterError(f"no record files found at {inputs}")
    texts: list[str] = []
    rows: list[list[float]] = []
    ids: list[str | None] = []
    weights: list[float | None] = []
    languages: list[str | None] = []
    counts = StageCounts()
    name = Path(inputs).name if isinstance(inputs, str) else "labels"
    records = chain.from_iterable(iter_records(path) for path in files)
    for location, record in progress(records, desc=f"train: read {name}", total=count_records(files), unit="doc"):
        text = _text(record, location, text_column)
        labels = _labels(record, location, label_column, tasks, integer_labels)
        if not text.strip():
            counts.drop("empty_text")
        elif all(math.isnan(v) for v in labels):
            counts.drop("no_labels")
        else:
            counts.keep()
            texts.append(text)
            rows.append(labels)
            raw_id = record.get("id")
            ids.append(None if raw_id is None else str(raw_id))
            weights.append(record_weight(record, location))
            language = record.get("language")
            languages.append(language if isinstance(language, str) and language else None)
    labels_array = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(tasks))
    weight_array = None
    if any(w is not None for w in weights):
        weight_array = np.array([1.0 if w is None else w for w in weights], dtype=np.float32)
    return LabeledData(
        texts=texts, labels=labels_array, ids=ids, files=files, counts=counts, weights=weight_array, languages=languages
    )


def _text(record: dict[str, Any], location: RecordLocation, column: str) -> str:
    if column not in record:
        raise RecordFormatError(location.path, location.line, f"field '{column}' is missing", "missing_field")
    text = record[column]
    if not isinstance(text, str):
        raise RecordFormatError(
            location.path, location.line, f"field '{column}': expected a string, got {type(text).__name__}", "bad_field"
        )
    return text


def _labels(
    record: dict[str, Any], location: RecordLocation, column: str, tasks: Sequence[TaskParams], integer: bool
) -> list[float]:
    if column not in record:
        raise RecordFormatError(location.path, location.line, f"field '{column}' is missing", "missing_field")
    raw = record[column]
    if not isinstance(raw, list):
        if len(tasks) == 1 and (raw is None or _is_number(raw)):
            raw = [raw]
        else:
            raise RecordFormatError(
                location.path,
                location.line,
                f"field '{column}': expected a list of {len(tasks)} labels (one per task: "
                f"{', '.join(t.name for t in tasks)}), got {raw!r}",
                "bad_field",
            )
    if len(raw) != len(tasks):
        raise RecordFormatError(
            location.path,
            location.line,
            f"field '{column}': expected {len(tasks)} labels (one per task: {', '.join(t.name for t in tasks)}), "
            f"got {len(raw)}",
            "bad_field",
        )
    values = []
    for index, (value, task) in enumerate(zip(raw, tasks, strict=True)):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            values.append(math.nan)
            continue
        if not _is_number(value) or not 0 <= value <= task.num_targets - 1:
            raise RecordFormatError(
                location.path,
                location.line,
                f"field '{column}[{index}]' (task {task.name}): expected a number in 0..{task.num_targets - 1} "
                f"or null, got {value!r}",
                "bad_label",
            )
        if integer and not float(value).is_integer():
            raise RecordFormatError(
                location.path,
                location.line,
                f"field '{column}[{index}]' (task {task.name}): a classification head needs whole-number labels, "
                f"got {value!r} — aggregate.rounding: none keeps fractional means; set aggregate.rounding to round "
                "(or floor/ceil), or train with training.is_regression: true",
                "fractional_label",
            )
        values.append(float(value))
    return values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
