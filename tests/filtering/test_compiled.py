"""``filter.scoring.compile``: the encoder compiled by TorchInductor scores as the eager model does, and a missing or
failing compiler falls back to the eager model with a logged reason."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pytest
import torch

from mlfilter.filtering import compiled
from mlfilter.filtering.engine import Scorer
from tests.filtering.conftest import TEST_SCORING

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def texts(documents: list[dict[str, Any]]) -> list[str]:
    return [d["text"] for d in documents[:6]] + ["", "Short."]


@pytest.fixture(scope="module")
def eager_scores(loaded: tuple[Any, Any], texts: list[str]) -> np.ndarray:
    model, tokenizer = loaded
    return Scorer(model, tokenizer, TEST_SCORING).score(texts).scores


def compiled_scorer(loaded: tuple[Any, Any]) -> Scorer:
    model, tokenizer = loaded
    return Scorer(model, tokenizer, dataclasses.replace(TEST_SCORING, compile=True, token_budget=300))


@pytest.mark.slow
def test_compiled_encoder_scores_as_the_eager_one(
    loaded: tuple[Any, Any], texts: list[str], eager_scores: np.ndarray
) -> None:
    """One real compile (about 30 CPU-seconds), over batches of several widths and row counts."""
    if compiled.unavailable_reason() is not None:
        pytest.skip(f"cannot compile here: {compiled.unavailable_reason()}")
    scorer = compiled_scorer(loaded)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    scores = scorer.score(texts).scores
    assert isinstance(scorer.runner.embed, compiled.CompiledEmbed)
    assert scorer.runner.embed.failed is None
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs, "nothing was compiled"
    np.testing.assert_allclose(scores, eager_scores, atol=TOLERANCE)
    assert np.ptp(eager_scores[:, 0]) > 0.5, "the stand-in model should spread its scores"


def test_without_a_compiler_scoring_runs_eagerly_and_says_why(
    loaded: tuple[Any, Any],
    texts: list[str],
    eager_scores: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("no-such-c++-compiler",))
    reason = compiled.unavailable_reason()
    assert reason is not None and "no-such-c++-compiler" in reason
    with caplog.at_level(logging.WARNING, logger="mlfilter.filter"):
        scores = compiled_scorer(loaded).score(texts).scores
    assert "scoring with the eager model" in caplog.text and "no-such-c++-compiler" in caplog.text
    np.testing.assert_array_equal(scores, eager_scores)


def test_a_failing_compile_falls_back_to_the_eager_model(
    loaded: tuple[Any, Any],
    texts: list[str],
    eager_scores: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    def broken_compiler(function: Any, **options: Any) -> Any:
        def run(*args: Any) -> Any:
            calls.append(args)
            raise RuntimeError("C++ compile error: something went wrong\n(long compiler output)")

        return run

    monkeypatch.setattr(compiled, "unavailable_reason", lambda: None)
    monkeypatch.setattr(torch, "compile", broken_compiler)
    scorer = compiled_scorer(loaded)
    with caplog.at_level(logging.WARNING, logger="mlfilter.filter"):
        scores = scorer.score(texts).scores
    assert len(calls) == 1, "after the first failure every batch should run eagerly"
    assert scorer.runner.embed.failed == "RuntimeError: C++ compile error: something went wrong"
    assert "compiling the encoder failed (RuntimeError: C++ compile error" in caplog.text
    np.testing.assert_array_equal(scores, eager_scores)
