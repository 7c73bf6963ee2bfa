"""Truncating documents to a token budget before they go into a prompt.

With a tokenizer (the local model's, or the one an annotator names) the budget is counted in that
tokenizer's tokens and the text is cut at the character offset where the last kept token ends, so the
kept text is exactly a prefix of the original. Without one, the budget becomes
``max_tokens * chars_per_token`` characters.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from mlfilter.embedded import resolve_model

Method = Literal["none", "tokens", "characters"]
#: Longest plausible token in characters: text is pre-cut to ``budget * this`` before tokenizing.
_MAX_CHARS_PER_TOKEN = 16


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Any:
    """A Hugging Face tokenizer from a hub id, a local folder or an ``embedded:`` model name."""
    from transformers import AutoTokenizer

    location = resolve_model(name)
    return AutoTokenizer.from_pretrained(location.path, **location.from_pretrained_kwargs())


class Truncator:
    """Cuts texts to ``max_tokens`` (0: no limit) and says whether it cut."""

    def __init__(self, max_tokens: int, tokenizer: Any | None = None, chars_per_token: float = 4.0) -> None:
        self.max_tokens = max_tokens
        self.tokenizer = tokenizer
        self.max_chars = int(max_tokens * chars_per_token)
        self.method: Method = "none" if max_tokens <= 0 else ("tokens" if tokenizer is not None else "characters")

    def __call__(self, text: str) -> tuple[str, bool]:
        """``(kept text, truncated?)``."""
        if self.method == "none":
            return text, False
        if self.method == "characters":
            return (text[: self.max_chars], True) if len(text) > self.max_chars else (text, False)
        window = text[: self.max_tokens * _MAX_CHARS_PER_TOKEN]
        end = self._cut_offset(window)
        if end is None and len(window) < len(text):
            end = self._cut_offset(text)
        if end is None:
            return text, False
        return text[:end], True

    def _cut_offset(self, text: str) -> int | None:
        """The character offset after the last token within budget, or None when the text fits."""
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        if len(offsets) <= self.max_tokens:
            return None
        return int(offsets[self.max_tokens - 1][1])
