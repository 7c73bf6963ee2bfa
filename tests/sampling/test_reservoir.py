"""Seeded bottom-k sampling with exact dedup, on compact keys."""

from __future__ import annotations

import numpy as np
import pytest

from mlfilter.sampling.reservoir import (
    KEY_DTYPE,
    document_keys,
    fraction_threshold,
    normalize_document_url,
    normalize_text,
    priority,
    select,
)


def candidates(specs: list[tuple[str, str, str | None, str]], seed: int = 7) -> np.ndarray:
    """Keys of (id, text, url, language) candidates."""
    return np.array([document_keys(seed, *spec) for spec in specs], dtype=KEY_DTYPE)


def run(keys: np.ndarray, files: np.ndarray | None = None, **kwargs):  # type: ignore[no-untyped-def]
    files = np.zeros(len(keys), dtype=np.int64) if files is None else files
    rows = np.arange(len(keys), dtype=np.int64)
    kwargs.setdefault("targets", {})
    kwargs.setdefault("fractions", {})
    return select(keys, files, rows, **kwargs)


def test_priority_is_a_keyed_hash_of_seed_and_id() -> None:
    assert priority(1, "a") == priority(1, "a")
    assert priority(1, "a") != priority(2, "a")
    assert 0 <= priority(-5, "b") < 2**64


def test_normalizations() -> None:
    assert normalize_text("  Ｈello\u00a0 WORLD\n\n") == "hello world"
    assert normalize_document_url("HTTPS://Example.COM:443/a?z=1&a=2#part") == "https://example.com/a?a=2&z=1"


def test_count_targets_keep_the_lowest_priorities_exactly() -> None:
    specs = [(f"id-{i}", f"text {i}", f"https://x.org/{i}", "de" if i % 3 else "fr") for i in range(60)]
    keys = candidates(specs)
    selection = run(keys, targets={"de": 10, "fr": 5})
    for language, k in (("de", 10), ("fr", 5)):
        mask = keys["language"] == language
        expected = np.sort(keys["priority"][mask])[:k]
        assert np.array_equal(np.sort(keys["priority"][selection.kept & mask]), expected)
    assert selection.kept_per_language == {"de": 10, "fr": 5}
    assert selection.dropped == {"not_sampled": 45}


def test_result_does_not_depend_on_input_order_or_file_split() -> None:
    specs = [(f"id-{i}", f"text {i % 25}", f"https://x.org/{i % 33}", "de") for i in range(80)]
    keys = candidates(specs)
    reference = run(keys, targets={"de": 12})
    permutation = np.random.default_rng(0).permutation(len(keys))
    shuffled = run(keys[permutation], files=np.arange(len(keys)) % 4, targets={"de": 12})
    ids = keys["id"]
    assert set(ids[reference.kept]) == set(ids[permutation][shuffled.kept])
    assert reference.dropped == shuffled.dropped


def test_duplicates_lose_to_the_first_document_in_priority_order() -> None:
    # priority, id, text, url (0 = none), language
    keys = np.array(
        [
            (10, 1, 101, 201, "en"),  # its URL comes first at priority 5 (row 2): duplicate_url
            (20, 2, 101, 202, "en"),  # its text comes first at priority 10 (row 0, itself dropped): duplicate_text
            (5, 3, 102, 201, "en"),
            (30, 3, 103, 203, "en"),  # its id comes first at priority 5: duplicate_id
            (40, 4, 104, 0, "en"),
            (50, 5, 105, 0, "en"),  # no URL: never a URL duplicate
        ],
        dtype=KEY_DTYPE,
    )
    selection = run(keys, targets={"en": 10})
    assert np.flatnonzero(selection.kept).tolist() == [2, 4, 5]
    assert selection.dropped == {"duplicate_url": 1, "duplicate_text": 1, "duplicate_id": 1}
    assert selection.eligible == {"en": 3}
    without_url_dedup = run(keys, targets={"en": 10}, dedup=("text",))
    assert np.flatnonzero(without_url_dedup.kept).tolist() == [0, 2, 4, 5]


def test_fraction_targets_follow_the_priority_threshold() -> None:
    keys = candidates([(f"id-{i}", f"text {i}", None, "pl") for i in range(400)])
    selection = run(keys, fractions={"pl": 0.25})
    assert np.array_equal(selection.kept, keys["priority"] < np.uint64(fraction_threshold(0.25)))
    assert 60 < selection.kept.sum() < 140
    assert run(keys, fractions={"pl": 1.0}).kept.all()


def test_empty_input() -> None:
    selection = run(np.zeros(0, dtype=KEY_DTYPE), targets={"de": 3})
    assert selection.kept_per_language == {"de": 0}
    assert not selection.dropped


@pytest.mark.parametrize("seed", [1, 2])
def test_different_seeds_draw_different_samples(seed: int) -> None:
    specs = [(f"id-{i}", f"text {i}", None, "de") for i in range(200)]
    kept = {s: set(np.flatnonzero(run(candidates(specs, s), targets={"de": 20}).kept)) for s in (seed, seed + 10)}
    assert kept[seed] != kept[seed + 10]
