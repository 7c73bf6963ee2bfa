"""The word cache tokenizes exactly as the Rust tokenizer does, or refuses the tokenizer."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import numpy as np
import pytest
from tokenizers import AddedToken, pre_tokenizers

from mlfilter.filtering.tokenize import DocumentTokenizer
from mlfilter.filtering.word_cache import WordPieceCache, word_cache_for
from tests.filtering.conftest import TEST_SCORING

HARD = [
    "",
    " \t\n ",
    "vertical\x0btab, form\x0cfeed, file\x1cseparators\x1fand next\x85line join words",
    "literal [CLS] and [SEP] tokens, and [CL\x1cS] split by a control character",
    "東京は日本の首都です。 中文字符 und 한국어 텍스트",
    "naïve café Ünïcödé ÅNGSTRÖM e\u0301 combining",
    "zero\u200bwidth soft\xadhyphen line\u2028separator no\xa0break ideographic\u3000space",
    "emoji 🙂👍🏽 and symbols ∑∫√ ≤≥ → ←",
    "a" * 150 + " long words " + "b" * 99 + " " + "c" * 101,
    "punctuation!!! (brackets) [more] {braces} e-mail@example.com 3.14159 1,000,000",
]


@pytest.fixture(scope="module")
def backend(loaded: tuple[Any, Any]) -> Any:
    rust = copy.deepcopy(loaded[1].backend_tokenizer)
    rust.no_truncation()
    rust.no_padding()
    return rust


def reference(backend: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
    flat = np.asarray([i for ids in encoded for i in ids], dtype=np.int32)
    return flat, np.asarray([len(ids) for ids in encoded])


def test_bert_tokenizer_gets_a_cache_that_knows_the_characters_its_normalizer_deletes(backend: Any) -> None:
    cache = word_cache_for(backend)
    assert isinstance(cache, WordPieceCache)
    assert cache._deleted is not None
    for char in "\x0b\x0c\x1c\x1f\x85":
        assert cache._deleted.search(char), repr(char)
    for char in " \t\n\xa0\u2028\u3000":
        assert not cache._deleted.search(char), repr(char)


def test_cold_and_warm_cache_equal_the_tokenizer_on_real_and_hard_texts(
    backend: Any, documents: list[dict[str, Any]]
) -> None:
    cache = word_cache_for(backend)
    assert cache is not None
    texts = [d["text"] for d in documents] + HARD
    expected_flat, expected_counts = reference(backend, texts)
    tokenized = []
    for _ in range(2):
        flat, counts = cache.encode(texts)
        tokenized.append(cache.tokenized)
        assert flat.dtype == np.int32
        np.testing.assert_array_equal(counts, expected_counts)
        np.testing.assert_array_equal(flat, expected_flat)
    assert tokenized[0] > 1000 and tokenized[1] == tokenized[0] + 2, "warm: only the two uncached texts tokenized"
    assert len(cache.words) > 1000
    assert not any(text in cache.words for text in HARD[2:4]), "texts tokenized whole are not cached"


def test_a_full_cache_empties_and_stays_exact(backend: Any, documents: list[dict[str, Any]]) -> None:
    cache = word_cache_for(backend)
    assert cache is not None
    cache.capacity = 50
    texts = [d["text"] for d in documents]
    for start in range(0, len(texts), 5):
        batch = texts[start : start + 5]
        flat, counts = cache.encode(batch)
        expected_flat, expected_counts = reference(backend, batch)
        np.testing.assert_array_equal(flat, expected_flat)
        np.testing.assert_array_equal(counts, expected_counts)
    assert len(cache.words) < 5 * max(len(t.split()) for t in texts)


def test_pickled_cache_travels_empty_and_refills(backend: Any, documents: list[dict[str, Any]]) -> None:
    cache = word_cache_for(backend)
    assert cache is not None
    texts = [d["text"] for d in documents[:10]]
    cache.encode(texts)
    copied = pickle.loads(pickle.dumps(cache))
    assert not copied.words and len(cache.words)
    np.testing.assert_array_equal(copied.encode(texts)[0], reference(backend, texts)[0])


def test_other_tokenizers_are_refused(backend: Any) -> None:
    metaspace = copy.deepcopy(backend)
    metaspace.pre_tokenizer = pre_tokenizers.Metaspace()
    assert word_cache_for(metaspace) is None
    spaced = copy.deepcopy(backend)
    spaced.add_tokens([AddedToken("new york", normalized=False)])
    assert word_cache_for(spaced) is None
    assert word_cache_for(None) is None


@pytest.mark.parametrize("mode", ["truncate", "chunk"])
def test_document_windows_are_the_same_with_and_without_the_cache(
    loaded: tuple[Any, Any], documents: list[dict[str, Any]], mode: str
) -> None:
    options = dataclasses.replace(TEST_SCORING, long_documents=mode, chunk_overlap=8)
    texts = [d["text"] for d in documents] + HARD + [" ".join(d["text"] for d in documents)]
    cached = DocumentTokenizer(loaded[1], options)
    plain = DocumentTokenizer(loaded[1], options)
    plain.word_cache = None
    assert cached.word_cache is not None
    with_cache, without = cached(texts), plain(texts)
    for field in dataclasses.fields(with_cache):
        np.testing.assert_array_equal(getattr(with_cache, field.name), getattr(without, field.name), field.name)
