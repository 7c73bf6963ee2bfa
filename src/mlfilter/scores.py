"""One rounding rule for labels and scores, and one meaning of "score at or above a threshold".

Every stage that turns a score into a class (aggregate, split strata, train and evaluate metrics, the model
card, filter keep rules) goes through these functions, so the same value is the same class everywhere.

- Rounding is **half up** (2.5 → 3, 1.5 → 2), not Python's or NumPy's half-to-even; values within
  :data:`TOLERANCE` of a half count as halves, which absorbs float error in weighted means.
- "Score ≥ t" follows FineWeb-Edu's convention, ``int_score >= t`` where ``int_score`` is the score rounded
  (and clipped to the label range): a raw score of 2.5 or more passes a threshold of 3.
"""

from __future__ import annotations

import numpy as np

#: Distance from a half within which a value counts as that half.
TOLERANCE = 1e-9


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
