"""One rounding rule for labels and scores, and one meaning of "score at or above a threshold".

Every stage that turns a score into a class (aggregate, split strata, train and evaluate metrics, the model
card, filter keep rules) goes through these functions, so the same value is the same class everywhere.

- Rounding is **half up** (2.5 → 3, 1.5 → 2), not Python's or NumPy's half-to-even; values within
  :data:`TOLERANCE` of a half count as halves, which absorbs float error in weighted means.
- "Score ≥ t" follows FineWeb-Edu's convention, ``int_score >= t`` where ``int_score`` is the score rounded
  (and clipped to the label range): a raw score of 2.5 or more passes a threshold of 3.
- Reported statistics (the headline metrics ``dvc metrics`` shows) keep :data:`STATISTIC_DIGITS` significant
  digits and at most as many decimals, rounded half up by the same rule (:func:`round_statistic`).
"""

from __future__ import annotations

import math

import numpy as np

#: Distance from a half within which a value counts as that half.
TOLERANCE = 1e-9
#: Significant digits (and most decimals) of a reported statistic: beyond them a figure is noise or float error.
STATISTIC_DIGITS = 4


def round_half_up(values: np.ndarray | float) -> np.ndarray:
    """Round to the nearest integer, halves up; NaN stays NaN. Returns float64 of the input's shape."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5 + TOLERANCE)


def to_int_score(values: np.ndarray | float, num_targets: int) -> np.ndarray:
    """Scores → labels ``0 .. num_targets - 1`` (rounded half up, then clipped); NaN stays NaN (float64)."""
    return np.clip(round_half_up(values), 0, num_targets - 1)


def at_or_above(values: np.ndarray | float, threshold: float) -> np.ndarray:
    """Boolean mask of scores whose rounded value is ``>= threshold`` (FineWeb-Edu ``int_score >= t``).

    NaN is never at or above a threshold.
    """
    rounded = round_half_up(values)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(rounded, nan=-np.inf) >= threshold


def round_statistic(value: float, digits: int = STATISTIC_DIGITS) -> float:
    """``value`` rounded half up to ``digits`` significant digits and at most ``digits`` decimals.

    0.123456 → 0.1235, 0.0012345 → 0.0012, 1.23456 → 1.235, 12345.6 → 12350.0. The decimal cap keeps float
    noise around zero (a margin of 3e-17) from showing as a figure.

    Raises:
        ValueError: ``value`` is NaN or infinite (an undefined statistic is ``None`` with a reason, not a number).
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot round {value!r}: an undefined statistic is null with a reason")
    if value == 0:
        return 0.0
    shift = min(digits - 1 - math.floor(math.log10(abs(value))), digits)
    if shift >= 0:
        scale = 10**shift
        return float(round_half_up(value * scale)) / scale
    scale = 10**-shift
    return float(round_half_up(value / scale)) * scale
