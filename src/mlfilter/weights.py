"""Inverse-probability weights of documents drawn with unequal probabilities (a proxy-stratified sample).

A sample strategy that over-samples some documents records each document's **inclusion probability** π (the
chance it entered the sample) in ``metadata.inclusion_probability``; the aggregate stage turns it into the label
record's ``weight`` field, ``1 / π`` (Horvitz & Thompson 1952), which split carries unchanged into every split.
Training weights each example's loss by it and evaluate reports weighted metrics, so their figures estimate the
population the sample was drawn from rather than the skewed sample. A record without the field weighs 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlfilter.records import RecordFormatError, RecordLocation

#: Key of a document's inclusion probability inside its ``metadata``.
INCLUSION_FIELD = "inclusion_probability"
#: Field of a label record holding its inverse-probability weight.
WEIGHT_FIELD = "weight"


def inclusion_weight(metadata: Mapping[str, Any] | None, location: RecordLocation) -> float | None:
    """``1 / π`` from a document's ``metadata.inclusion_probability``, or None when it has none.

    Raises:
        RecordFormatError: π is not a number in ``(0, 1]``.
    """
    if not metadata or INCLUSION_FIELD not in metadata:
        return None
    value = metadata[INCLUSION_FIELD]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise RecordFormatError(
            location.path,
            location.line,
            f"field 'metadata.{INCLUSION_FIELD}': expected a probability in (0, 1], got {value!r}",
            "bad_field",
        )
    return 1.0 / float(value)


def record_weight(record: Mapping[str, Any], location: RecordLocation) -> float | None:
    """A label record's ``weight`` field (None when absent).

    Raises:
        RecordFormatError: the weight is not a finite number > 0.
    """
    if WEIGHT_FIELD not in record or record[WEIGHT_FIELD] is None:
        return None
    value = record[WEIGHT_FIELD]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise RecordFormatError(
            location.path, location.line, f"field '{WEIGHT_FIELD}': expected a number > 0, got {value!r}", "bad_field"
        )
    return float(value)
