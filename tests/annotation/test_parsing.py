"""Reading scores: last match wins, missing or out-of-range scores are null with a status, never 0."""

from __future__ import annotations

import math

import pytest

from mlfilter.annotation.parsing import ScoreParser, logprob_score
from mlfilter.annotation.prompts import default_score_pattern
from mlfilter.annotation.statuses import NO_SCORE, OK, OUT_OF_RANGE, request_failed

LABELS = ("0", "1", "2", "3", "4", "5")
PARSER = ScoreParser(default_score_pattern("Educational score: ", LABELS), LABELS)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Reasoning…\nEducational score: 4", (4, OK)),
        ("Educational score: 1 at first, but on reflection\nEducational score: 3", (3, OK)),
        ("Educational score: 3 points out of 5", (3, OK)),
        ("Educational score: 3.0", (3, OK)),
        ("Educational score: 0", (0, OK)),
        ("Educational score: 7", (None, OUT_OF_RANGE)),
        ("Educational score: -1", (None, OUT_OF_RANGE)),
        ("Educational score: 2.5", (None, OUT_OF_RANGE)),
        ("Educational score: 100", (None, OUT_OF_RANGE)),
        ("I would give this 3 points.", (None, NO_SCORE)),
        ("Educational score: <points>", (None, NO_SCORE)),
        ("", (None, NO_SCORE)),
        (None, (None, NO_SCORE)),
    ],
)
def test_generate_mode_parsing(reply: str | None, expected: tuple) -> None:
    assert PARSER.parse(reply) == expected


def test_labels_on_another_scale_map_to_their_index() -> None:
    labels = ("1", "2", "3", "4", "5")
    parser = ScoreParser(default_score_pattern("Quality: ", labels), labels)
    assert parser.parse("Quality: 1") == (0, OK)
    assert parser.parse("Quality: 5") == (4, OK)
    assert parser.parse("Quality: 0") == (None, OUT_OF_RANGE)


def test_word_labels() -> None:
    labels = ("no", "yes")
    parser = ScoreParser(default_score_pattern("Answer: ", labels), labels)
    assert parser.parse("Answer: Yes") == (1, OK)
    assert parser.parse("Answer: maybe") == (None, NO_SCORE)


def test_custom_pattern_with_one_group() -> None:
    parser = ScoreParser(r"\[\[(\d)\]\]", LABELS)
    assert parser.parse("[[2]] then [[5]]") == (5, OK)


def test_logprob_distribution_and_expected_score() -> None:
    top = [(" 3", math.log(0.4)), ("3", math.log(0.1)), ("4", math.log(0.25)), ("2", math.log(0.15)), ("The", -1.0)]
    read = logprob_score(top, LABELS)
    assert read is not None
    assert read.distribution == pytest.approx((0, 0, 0.15 / 0.9, 0.5 / 0.9, 0.25 / 0.9, 0), abs=1e-6)
    assert read.expected == pytest.approx((2 * 0.15 + 3 * 0.5 + 4 * 0.25) / 0.9, abs=1e-4)
    assert read.label_mass == pytest.approx(0.9, abs=1e-6)


def test_logprobs_without_a_label_token_read_nothing() -> None:
    assert logprob_score([("The", -0.1), ("7", -2.0)], LABELS) is None
    assert logprob_score([], LABELS) is None


def test_request_failed_status() -> None:
    assert request_failed("timeout") == "request_failed:timeout"
