"""The scoring engine against an unbatched reference forward pass of the same model."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import pytest
import torch

from mlfilter.filtering.engine import Scorer, aggregate_windows, collate, plan_batches, score_texts
from mlfilter.filtering.tokenize import DocumentTokenizer, Tokenized, TokenizerPool, special_tokens
from tests.filtering.conftest import TEST_SCORING

TOLERANCE = 1e-4


def reference_scores(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    """One document at a time, the tokenizer's own head truncation, no padding."""
    rows = []
    with torch.no_grad():
        for text in texts:
            encoded = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            rows.append(model(**encoded).scores[0].numpy())
    return np.asarray(rows)


def window_reference(model: Any, tokenizer: Any, ids: list[int]) -> np.ndarray:
    prefix, suffix = special_tokens(tokenizer)
    input_ids = torch.tensor([prefix + ids + suffix])
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).scores[0].numpy()


@pytest.fixture(scope="module")
def texts(documents: list[dict[str, Any]]) -> list[str]:
    return [d["text"] for d in documents[:18]] + ["", "Short."]


@pytest.fixture(scope="module")
def reference(loaded: tuple[Any, Any], texts: list[str]) -> np.ndarray:
    model, tokenizer = loaded
    return reference_scores(model, tokenizer, texts, TEST_SCORING.max_length)


@pytest.mark.parametrize(("token_budget", "max_batch_size"), [(16384, 256), (400, 5), (100, 2)])
def test_scores_equal_the_unbatched_reference_whatever_the_batching(
    loaded: tuple[Any, Any], texts: list[str], reference: np.ndarray, token_budget: int, max_batch_size: int
) -> None:
    model, tokenizer = loaded
    options = dataclasses.replace(TEST_SCORING, token_budget=token_budget, max_batch_size=max_batch_size)
    scores = Scorer(model, tokenizer, options).score(texts).scores
    assert scores.shape == (len(texts), 2)
    np.testing.assert_allclose(scores, reference, atol=TOLERANCE)
    assert np.ptp(reference[:, 0]) > 0.5, "the stand-in model should spread its scores"


def test_results_follow_input_order(loaded: tuple[Any, Any], texts: list[str], reference: np.ndarray) -> None:
    model, tokenizer = loaded
    order = list(range(len(texts)))
    random.Random(3).shuffle(order)
    scores = score_texts(model, tokenizer, [texts[i] for i in order], max_length=TEST_SCORING.max_length)
    np.testing.assert_allclose(scores, reference[order], atol=TOLERANCE)


def test_score_stream_scores_each_window_like_a_single_call(
    loaded: tuple[Any, Any], texts: list[str], reference: np.ndarray
) -> None:
    model, tokenizer = loaded
    scorer = Scorer(model, tokenizer, TEST_SCORING)
    windows = [list(range(i, min(i + 7, len(texts)))) for i in range(0, len(texts), 7)]
    results = list(scorer.score_stream(windows, lambda i: texts[i]))
    assert [items for items, _ in results] == windows
    scores = np.concatenate([scored.scores for _, scored in results])
    np.testing.assert_allclose(scores, reference, atol=TOLERANCE)


def test_token_counts_are_exact_where_tokenized_whole_and_close_where_cut(
    loaded: tuple[Any, Any], texts: list[str]
) -> None:
    model, tokenizer = loaded
    long_text = " ".join(texts[:18]) * 4
    tokenized = DocumentTokenizer(tokenizer, TEST_SCORING)([*texts, long_text])
    expected = np.asarray([len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in [*texts, long_text]])
    exact = tokenized.tokens_exact
    assert exact[:-2].any() and not exact[-1], "short texts are tokenized whole, the long one is cut"
    np.testing.assert_array_equal(tokenized.tokens[exact], expected[exact])
    np.testing.assert_allclose(tokenized.tokens[~exact], expected[~exact], rtol=0.25)
    assert max(expected) > TEST_SCORING.max_length, "some documents must be longer than a window"
    scored = Scorer(model, tokenizer, TEST_SCORING).score(texts)
    assert scored.tokens[-2] == 0 and np.isfinite(scored.scores[-2]).all(), "an empty text still gets scores"


def test_truncated_windows_equal_those_of_the_whole_text(loaded: tuple[Any, Any], texts: list[str]) -> None:
    _, tokenizer = loaded
    prefix, suffix = special_tokens(tokenizer)
    hard = [
        " ".join(texts) * 30,  # about 100k characters
        "word " + " " * 5000 + "after a long run of spaces " * 40,
        "x" * 20000,
        "ünïcödé naïve café " * 400,
        "".join(texts)[:8000].replace(" ", ""),
    ]
    tokenized = DocumentTokenizer(tokenizer, TEST_SCORING)(hard)
    for doc, text in enumerate(hard):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: TEST_SCORING.max_length - 2]
        window = tokenized.ids[tokenized.offsets[doc] : tokenized.offsets[doc + 1]].tolist()
        assert window == prefix + ids + suffix, f"document {doc}"
    assert len(hard[0]) > 100_000


@pytest.mark.parametrize("aggregate", ["mean", "max"])
def test_chunked_documents_aggregate_their_window_scores(
    loaded: tuple[Any, Any], texts: list[str], aggregate: str
) -> None:
    model, tokenizer = loaded
    options = dataclasses.replace(
        TEST_SCORING, long_documents="chunk", chunk_aggregate=aggregate, chunk_overlap=16, max_chunks=4
    )
    scores = Scorer(model, tokenizer, options).score(texts[:4]).scores
    body, step = options.max_length - 2, options.max_length - 2 - 16
    for text, row in zip(texts[:4], scores, strict=True):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        count = max(1, -(-(len(ids) - 16) // step))
        starts = [i * step for i in range(count)]
        if count > 4:
            starts = [starts[i] for i in np.unique(np.linspace(0, count - 1, 4).round().astype(int))]
        windows = np.asarray([window_reference(model, tokenizer, ids[s : s + body]) for s in starts])
        expected = windows.mean(0) if aggregate == "mean" else windows.max(0)
        np.testing.assert_allclose(row, expected, atol=TOLERANCE)


def test_window_starts_cover_the_document_and_cap_evenly(loaded: tuple[Any, Any]) -> None:
    _, tokenizer = loaded
    options = dataclasses.replace(TEST_SCORING, long_documents="chunk", chunk_overlap=14, max_chunks=5)
    windows = DocumentTokenizer(tokenizer, options)
    body = options.max_length - 2
    assert windows.window_starts(body) == [0]
    assert windows.window_starts(body + 1) == [0, body - 14]
    many = windows.window_starts(100 * body)
    assert len(many) == 5 and many[0] == 0 and many[-1] + body >= 100 * body
    truncating = DocumentTokenizer(tokenizer, TEST_SCORING)
    assert truncating.window_starts(100 * body) == [0]


def test_batches_are_length_sorted_and_under_the_token_budget() -> None:
    lengths = np.random.default_rng(0).integers(1, 513, size=500)
    batches = plan_batches(lengths, token_budget=4096, max_batch_size=64, multiple=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    previous = np.inf
    for batch in batches:
        padded = -(-int(lengths[batch].max()) // 8) * 8
        assert len(batch) <= 64 and padded * len(batch) <= 4096
        assert lengths[batch].max() <= previous
        previous = lengths[batch].min()
    useful = lengths.sum() / sum(-(-int(lengths[b].max()) // 8) * 8 * len(b) for b in batches)
    assert useful > 0.9, "sorting should leave little padding"


def test_window_scores_aggregate_per_document() -> None:
    window_scores = np.asarray([[1.0], [3.0], [2.0], [5.0]], dtype=np.float32)
    window_doc = np.asarray([0, 0, 1, 3])
    mean = aggregate_windows(window_scores, window_doc, 4, "mean")
    maximum = aggregate_windows(window_scores, window_doc, 4, "max")
    np.testing.assert_array_equal(mean[[0, 1, 3], 0], [2.0, 2.0, 5.0])
    np.testing.assert_array_equal(maximum[[0, 1, 3], 0], [3.0, 2.0, 5.0])
    assert np.isnan(mean[2, 0]) and np.isnan(maximum[2, 0])


def test_bfloat16_encoder_stays_close_to_float32(model_dir: Any, texts: list[str], reference: np.ndarray) -> None:
    options = dataclasses.replace(TEST_SCORING, dtype="bfloat16")
    scorer = Scorer.load(str(model_dir), options)
    assert next(scorer.model.encoder.parameters()).dtype == torch.bfloat16
    assert next(scorer.model.heads.parameters()).dtype == torch.float32
    scores = scorer.score(texts).scores
    assert np.abs(scores - reference).max() < 0.25
    assert np.corrcoef(scores[:, 0], reference[:, 0])[0, 1] > 0.99


def test_a_tokenizer_pool_of_processes_gives_the_in_process_windows_and_scores(
    loaded: tuple[Any, Any], texts: list[str], reference: np.ndarray
) -> None:
    model, tokenizer = loaded
    options = dataclasses.replace(TEST_SCORING, tokenize_workers=2)
    scorer = Scorer(model, tokenizer, options)
    windows = [list(range(i, min(i + 5, len(texts)))) for i in range(0, len(texts), 5)]
    results = list(scorer.score_stream(windows, lambda i: texts[i]))
    assert [items for items, _ in results] == windows
    np.testing.assert_allclose(np.concatenate([s.scores for _, s in results]), reference, atol=TOLERANCE)
    in_process = DocumentTokenizer(tokenizer, options)(texts)
    pooled = TokenizerPool(scorer.tokenizer, 2)
    with pooled:
        joined = pooled.submit(texts).result()
    for field in ("ids", "offsets", "window_doc", "tokens", "tokens_exact"):
        np.testing.assert_array_equal(getattr(joined, field), getattr(in_process, field))


def test_vectorised_collate_pads_each_row_after_its_window() -> None:
    ids = np.asarray([101, 5, 6, 102, 101, 102, 101, 7, 8, 9, 102], dtype=np.int32)
    windows = Tokenized(ids, np.asarray([0, 4, 6, 11]), np.arange(3), np.asarray([2, 0, 3]))
    out = np.full((4, 8), -1, dtype=np.int64)
    collate(windows, np.asarray([2, 0, 1]), 6, 0, out)
    assert out[:3, :6].tolist() == [[101, 7, 8, 9, 102, 0], [101, 5, 6, 102, 0, 0], [101, 102, 0, 0, 0, 0]]
    assert (out[3] == -1).all() and (out[:, 6:] == -1).all(), "only the batch's rows and width are written"
