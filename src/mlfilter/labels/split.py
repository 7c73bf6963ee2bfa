"""Leak-free, stable train/val/test splits of the labels.

The unit of assignment is the **normalized text** (Unicode NFKC, case-folded, runs of whitespace
collapsed, trimmed): documents whose texts normalize alike always share a split, so no text leaks
from train into val or test. Each unit gets ``u`` in [0, 1) from a seeded 64-bit BLAKE2b hash of its
normalized text.

- ``hash`` (default): the split is where ``u`` falls among the cumulative fractions (train below
  0.8, val below 0.9, test above, with the defaults). A document's split depends on nothing but its
  own text and the seed, so adding documents never moves existing ones, and since ``u`` is
  independent of language and label every stratum is split in the given fractions *in
  expectation*; a stratum of n documents deviates by about sqrt(f(1-f)/n) (0.013 for n=1000,
  f=0.8). The report measures the deviations.
- ``balanced``: within each stratum (language and/or rounded labels) units are ranked by ``u`` and
  the unit at rank r of n gets position (r + 0.5) / n, which is compared with the cumulative
  fractions; every stratum then matches the fractions to within one unit. The price is stability:
  a new document shifts the ranks of its stratum, so documents near a cut can change split.

A unit whose documents differ in language or label goes with the stratum of its first document.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlfilter.labels.params import SplitFractions, SplitParams
from mlfilter.labels.report import split_summary, stratification_summary
from mlfilter.logs import progress
from mlfilter.params import TaskParams
from mlfilter.records import RecordFormatError, RecordWriter, count_records, iter_records
from mlfilter.reports import StageCounts, Stopwatch
from mlfilter.scores import round_half_up
from mlfilter.text import normalize_text

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def text_key(text: str, seed: int) -> bytes:
    """A 16-byte seeded digest of the normalized text: the identity of a split unit."""
    salt = seed.to_bytes(16, "little", signed=True)
    return hashlib.blake2b(normalize_text(text).encode("utf-8", "surrogatepass"), digest_size=16, salt=salt).digest()


def unit_position(key: bytes) -> float:
    """The unit's ``u`` in [0, 1) from its digest."""
    return int.from_bytes(key[:8], "big") / 2**64


def split_at(position: float, fractions: SplitFractions) -> str:
    """The split whose cumulative-fraction interval holds ``position``."""
    cumulative = 0.0
    for name, share in fractions.as_dict().items():
        cumulative += share
        if position < cumulative:
            return name
    return next(name for name, share in reversed(fractions.as_dict().items()) if share > 0)


def stratum_of(record: Mapping[str, Any], stratify_by: Sequence[str]) -> str:
    """The stratum name of a label record, e.g. ``language=de|label=3``."""
    parts = []
    for key in stratify_by:
        if key == "language":
            parts.append(f"language={record.get('language') or 'unknown'}")
        else:
            parts.append("label=" + ",".join(_class_name(s) for s in record.get("scores") or []))
    return "|".join(parts) or "all"


def _class_name(score: Any) -> str:
    return "null" if score is None else str(int(round_half_up(score)))


def assign_balanced(units: Mapping[bytes, str], fractions: SplitFractions) -> dict[bytes, str]:
    """Split each stratum's units at the fractions by rank of ``u`` (see the module docs)."""
    by_stratum: dict[str, list[bytes]] = defaultdict(list)
    for key, stratum in units.items():
        by_stratum[stratum].append(key)
    assignment: dict[bytes, str] = {}
    for keys in by_stratum.values():
        keys.sort(key=lambda k: (unit_position(k), k))
        for rank, key in enumerate(keys):
            assignment[key] = split_at((rank + 0.5) / len(keys), fractions)
    return assignment


def _read_labels(path: str) -> Iterable[dict[str, Any]]:
    for location, record in iter_records(path):
        text = record.get("text")
        if not isinstance(text, str):
            raise RecordFormatError(location.path, location.line, "field 'text' must be a string", "invalid_record")
        if not isinstance(record.get("scores"), list):
            raise RecordFormatError(location.path, location.line, "field 'scores' must be a list", "invalid_record")
        yield record


def split_path(out_dir: str | os.PathLike[str], name: str) -> Path:
    """The file of split ``name`` in ``out_dir``: zstandard-compressed JSON Lines (the texts are copies of
    the sample's; zstandard's output has no timestamp, so identical splits have identical DVC hashes)."""
    return Path(out_dir) / f"{name}.jsonl.zst"


def split_labels(
    *,
    labels: str,
    out_dir: str | os.PathLike[str],
    tasks: Sequence[TaskParams],
    params: SplitParams,
) -> dict[str, Any]:
    """Write the label records to ``train.jsonl.zst``, ``val.jsonl.zst`` and ``test.jsonl.zst`` in ``out_dir``
    (see :func:`split_path`) and return the report."""
    watch = Stopwatch()
    counts = StageCounts()
    assignment: dict[bytes, str] | None = None
    keys: list[bytes] = []  # balanced: the unit keys of the first pass, in file order
    n_labels = count_records([labels])
    if params.method == "balanced":
        units: dict[bytes, str] = {}
        for record in progress(_read_labels(labels), desc="split: strata", total=n_labels, unit="doc"):
            keys.append(text_key(record["text"], params.seed))
            units.setdefault(keys[-1], stratum_of(record, params.stratify_by))
        assignment = assign_balanced(units, params.fractions)

    rows: dict[str, list[tuple[str | None, tuple[float | None, ...]]]] = {name: [] for name in SPLITS}
    strata: dict[str, Counter[str]] = defaultdict(Counter)
    unit_sizes: Counter[bytes] = Counter()
    out = Path(out_dir)
    writers = {name: RecordWriter(split_path(out, name)) for name in SPLITS}
    try:
        for position, record in enumerate(
            progress(_read_labels(labels), desc="split: documents", total=n_labels, unit="doc")
        ):
            key = keys[position] if keys else text_key(record["text"], params.seed)
            split = assignment[key] if assignment is not None else split_at(unit_position(key), params.fractions)
            writers[split].write(record)
            counts.keep()
            unit_sizes[key] += 1
            rows[split].append((record.get("language"), tuple(record["scores"])))
            strata[stratum_of(record, params.stratify_by)][split] += 1
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        writer.close()
    counts.check_balance()
    if counts.seen and any(len(rows[name]) == 0 for name, share in params.fractions.as_dict().items() if share > 0):
        log.warning("a split with a non-zero fraction is empty: %s", {n: len(r) for n, r in rows.items()})
    shared = [n for n in unit_sizes.values() if n > 1]
    return {
        "method": params.method,
        "documents": counts.as_dict(),
        "splits": split_summary(rows, tasks, params.fractions.as_dict()),
        "stratification": {
            "by": list(params.stratify_by),
            **stratification_summary(strata, params.fractions.as_dict()),
        },
        "duplicate_text": {"groups": len(shared), "documents": sum(shared)},
        "seconds": round(watch.seconds, 3),
        "docs_per_second": watch.rate(counts.seen),
    }
