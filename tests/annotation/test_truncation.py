"""Truncating documents to a token budget: the model's tokenizer when there is one, else characters."""

from __future__ import annotations

import pytest

from mlfilter.annotation.truncation import Truncator, load_tokenizer
from tests.annotation.conftest import DOCUMENTS


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("embedded:SmolLM2-135M-Instruct")


def test_no_budget_keeps_everything() -> None:
    truncator = Truncator(0)
    assert truncator("x" * 10_000) == ("x" * 10_000, False)
    assert truncator.method == "none"


def test_character_budget_without_a_tokenizer() -> None:
    truncator = Truncator(10, chars_per_token=3.0)
    assert truncator.method == "characters"
    assert truncator("a" * 30) == ("a" * 30, False)
    assert truncator("a" * 31) == ("a" * 30, True)


def test_token_budget_keeps_an_exact_prefix(tokenizer) -> None:
    text = DOCUMENTS.read_text(encoding="utf-8")[:20_000]
    truncator = Truncator(100, tokenizer)
    kept, truncated = truncator(text)
    assert truncator.method == "tokens" and truncated
    assert text.startswith(kept)
    assert 99 <= len(tokenizer(kept, add_special_tokens=False)["input_ids"]) <= 100


def test_short_texts_are_untouched(tokenizer) -> None:
    assert Truncator(100, tokenizer)("A short text.") == ("A short text.", False)


def test_texts_of_very_long_tokens_are_cut_right(tokenizer) -> None:
    text = "\u4e00\u4e8c\u4e09" * 3000 + " end"
    kept, truncated = Truncator(50, tokenizer)(text)
    assert truncated and text.startswith(kept)
    assert len(tokenizer(kept, add_special_tokens=False)["input_ids"]) <= 50
