"""The one text normalisation: what makes two texts the same document for dedup and for leak-free splits."""

from __future__ import annotations

import unicodedata


def normalize_text(text: str) -> str:
    """``text`` NFKC-normalised, case-folded, whitespace runs collapsed to one space and trimmed.

    The sample stage's exact dedup and the split stage's unit of assignment both use it, so a text
    deduplicated away can never reappear on the other side of a split.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
