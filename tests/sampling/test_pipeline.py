"""The sample stage end to end on WARC, WET, JSONL and Parquet files written by the tests."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlfilter.errors import MlfilterError
from mlfilter.sampling.params import SourceParams
from mlfilter.sampling.pipeline import run_sample
from mlfilter.sampling.reservoir import fraction_threshold, priority
from tests.sampling.conftest import make_params
from tests.sampling.helpers import (
    DATA,
    WarcFile,
    html_page,
    multilingual_warc,
    read_output,
    texts,
    warcio_offsets,
)

SEED = 13


def sample(params, tmp_path: Path, name: str = "out") -> tuple[dict, list[dict]]:  # type: ignore[no-untyped-def]
    report = run_sample(params, SEED, tmp_path / name, tmp_path / f"{name}.json")
    assert json.loads((tmp_path / f"{name}.json").read_text()) == report
    return report, read_output(tmp_path / name)


def balanced(report: dict) -> bool:
    records = report["records"]
    return records["seen"] == records["kept"] + sum(records["dropped"].values())


@pytest.fixture(scope="module")
def warcs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three WARC files: two multilingual ones with other en/de/es/sr texts but the same ko/ja texts, and
    a third repeating three records of the first."""
    root = tmp_path_factory.mktemp("warcs")
    first = multilingual_warc(root / "a.warc.gz", prefix="a/")
    second = multilingual_warc(root / "b.warc.gz", prefix="b/", start=6)
    repeat = WarcFile()
    for i in range(3):
        url = f"https://en.example.org/a/page-{i}.html"
        repeat.response(url, html_page(f"Page {i}", texts("en")[i], "utf-8"))
    return [first, second, repeat.write(root / "c.warc.gz")]


def test_multilingual_warc(warcs: list[Path], tmp_path: Path) -> None:
    report, docs = sample(make_params(tmp_path, str(warcs[0])), tmp_path)
    records = report["records"]
    assert records["seen"] == len(warcio_offsets(warcs[0]))
    assert balanced(report)
    for reason, count in {
        "record_type:warcinfo": 1,
        "record_type:request": 35,
        "http_status:301": 1,
        "http_status:404": 1,
        "not_html": 1,
        "duplicate_text": 1,
        "duplicate_url": 1,
    }.items():
        assert records["dropped"][reason] == count, reason
    assert Counter(d["language"] for d in docs) == {"en": 3, "de": 3, "es": 3, "sr": 3, "ko": 2, "ja": 2}
    assert report["languages"]["de"] == {"seen": 6, "eligible": 6, "kept": 3, "target": 3, "shortfall": 0}
    assert report["documents_extracted"] == 6 * 4 + 3 + 3 + 2
    assert report["throughput"]["documents_per_second"] > 0
    offsets = warcio_offsets(warcs[0])
    for doc in docs:
        assert set(doc) == {"id", "text", "url", "language", "metadata"}
        assert doc["id"].startswith("urn:uuid:")
        assert doc["metadata"]["source"] == str(warcs[0])
        assert doc["metadata"]["offset"] == offsets[f"<{doc['id']}>"]
        assert 0.5 <= doc["metadata"]["language_score"] <= 1
    korean = [d["text"] for d in docs if d["language"] == "ko"]
    assert all(any(t in text for t in texts("ko")) for text in korean)  # EUC-KR declared in <meta> only
    german = " ".join(d["text"] for d in docs if d["language"] == "de")
    assert "ä" in german or "ö" in german or "ü" in german or "ß" in german  # ISO-8859-1 declared by HTTP


def test_wet_conversion_records(tmp_path: Path) -> None:
    wet = WarcFile()
    for language in ("de", "es"):
        for i, text in enumerate(texts(language)[:4]):
            wet.conversion(f"https://{language}.example.org/{i}", text)
    path = wet.write(tmp_path / "x.warc.wet.gz")
    report, docs = sample(make_params(tmp_path, str(path), targets={"de": 2, "es": 10}), tmp_path)
    assert Counter(d["language"] for d in docs) == {"de": 2, "es": 4}
    assert report["languages"]["es"]["shortfall"] == 6
    assert all(d["text"] in texts(d["language"]) for d in docs)
    assert report["records"]["dropped"] == {"record_type:warcinfo": 1, "not_sampled": 2}


def test_deterministic_across_runs_and_worker_counts(warcs: list[Path], tmp_path: Path) -> None:
    paths = [str(p) for p in warcs]
    params = make_params(tmp_path, *paths, targets={"en": 5, "de": 4, "es": 4, "sr": 4, "ko": 3, "ja": 3})
    one, docs_one = sample(params, tmp_path, "one")
    again, docs_again = sample(dataclasses.replace(params, work_dir=str(tmp_path / "w2")), tmp_path, "again")
    two, docs_two = sample(dataclasses.replace(params, workers=2, work_dir=str(tmp_path / "w3")), tmp_path, "two")
    assert docs_one == docs_again == docs_two
    for report in (again, two):
        assert {k: v for k, v in report.items() if k != "throughput"} == {
            k: v for k, v in one.items() if k != "throughput"
        }
    assert one["records"]["dropped"]["duplicate_id"] == 3  # the third file repeats three records
    assert len({d["id"] for d in docs_one}) == len(docs_one) == 23


def test_targets_are_met_exactly_when_enough_documents_exist(warcs: list[Path], tmp_path: Path) -> None:
    paths = [str(p) for p in warcs]
    report, docs = sample(make_params(tmp_path, *paths, targets={"en": 11, "sr": 12, "ko": 9}), tmp_path)
    assert Counter(d["language"] for d in docs) == {"en": 11, "sr": 12, "ko": 3}
    assert report["languages"]["en"]["eligible"] == 12
    assert report["languages"]["ko"] == {"seen": 6, "eligible": 3, "kept": 3, "target": 9, "shortfall": 6}
    # per multilingual file: 6 German, 7 Spanish (one under a repeated URL), 3 Japanese pages
    assert report["records"]["dropped"]["language_not_selected"] == 2 * (6 + 7 + 3)
    _, every_english = sample(
        make_params(tmp_path, *paths, targets={"en": 100}, work_dir=str(tmp_path / "w2")), tmp_path, "all"
    )
    lowest = sorted((d["id"] for d in every_english), key=lambda doc_id: priority(SEED, doc_id))[:11]
    assert {d["id"] for d in docs if d["language"] == "en"} == set(lowest)


def test_language_score_filter(warcs: list[Path], tmp_path: Path) -> None:
    params = make_params(tmp_path, str(warcs[0]), min_language_score=0.999999)
    report, docs = sample(params, tmp_path)
    assert report["records"]["dropped"]["low_language_score"] > 0
    assert all(d["metadata"]["language_score"] >= 0.999999 for d in docs)
    assert balanced(report)


def test_fraction_targets(warcs: list[Path], tmp_path: Path) -> None:
    params = make_params(tmp_path, *(str(p) for p in warcs[:2]), targets={}, fractions={"en": 0.5, "sr": 1.0})
    report, docs = sample(params, tmp_path)
    english = [d for d in docs if d["language"] == "en"]
    assert all(priority(SEED, d["id"]) < fraction_threshold(0.5) for d in english)
    assert 0 < len(english) < 12
    assert sum(d["language"] == "sr" for d in docs) == 12
    assert report["languages"]["en"]["fraction"] == 0.5
    assert balanced(report)


def test_jsonl_and_parquet_documents_with_a_field_mapping(tmp_path: Path) -> None:
    german = tmp_path / "deu.jsonl"
    german.write_text((DATA / "fineweb2-deu_Latn.jsonl").read_text("utf-8") + "{not json\n", "utf-8")
    spanish = tmp_path / "spa.parquet"
    rows = [json.loads(line) for line in (DATA / "fineweb2-spa_Latn.jsonl").read_text("utf-8").splitlines()]
    pq.write_table(pa.Table.from_pylist([{"key": r["id"], "body": r["text"], "link": r["url"]} for r in rows]), spanish)
    params = make_params(
        tmp_path,
        targets={"de": 5, "es": 5},
        on_error="skip",
        sources=(
            SourceParams(type="documents", paths=(str(german),), fields={"id": "document_id"}),
            SourceParams(type="documents", paths=(str(spanish),), fields={"id": "key", "text": "body", "url": "link"}),
        ),
    )
    report, docs = sample(params, tmp_path)
    ids = {json.loads(line)["document_id"] for line in (DATA / "fineweb2-deu_Latn.jsonl").read_text().splitlines()}
    ids |= {r["id"] for r in rows}
    assert {d["id"] for d in docs} <= ids
    assert Counter(d["language"] for d in docs) == {"de": 5, "es": 5}
    german_doc = next(d for d in docs if d["language"] == "de")
    assert german_doc["metadata"]["source_language"] == "deu"
    assert german_doc["metadata"]["line"] >= 1
    assert all(d["url"] for d in docs if d["language"] == "es")
    assert report["records"]["seen"] == 25
    assert report["records"]["dropped"]["invalid_json"] == 1
    with pytest.raises(MlfilterError, match=r"deu\.jsonl:13: invalid JSON"):
        run_sample(dataclasses.replace(params, on_error="raise"), SEED, tmp_path / "o2", tmp_path / "r2.json")


def corrupt(path: Path, member: int) -> tuple[Path, int]:
    """A copy of ``path`` whose ``member``-th gzip member is damaged; and that member's offset."""
    offset = sorted(warcio_offsets(path).values())[member]
    data = bytearray(path.read_bytes())
    for i in range(offset + 40, offset + 80):
        data[i] ^= 0x5A
    damaged = path.parent / f"damaged-{member}-{path.name}"
    damaged.write_bytes(bytes(data))
    return damaged, offset


def test_corrupt_gzip_member(warcs: list[Path], tmp_path: Path) -> None:
    damaged, offset = corrupt(warcs[0], 30)
    params = make_params(tmp_path, str(damaged), str(warcs[1]))
    with pytest.raises(MlfilterError, match=rf"{damaged}: corrupt gzip member at byte offset {offset}"):
        run_sample(params, SEED, tmp_path / "out", tmp_path / "r.json")
    assert not (tmp_path / "out").exists()
    report, docs = sample(dataclasses.replace(params, on_error="skip"), tmp_path)
    assert report["files"]["failed"] == {"corrupt_gzip": 1}
    assert report["files"]["errors"][0]["path"] == str(damaged)
    assert str(offset) in report["files"]["errors"][0]["message"]
    assert report["records"]["seen"] == 30 + len(warcio_offsets(warcs[1]))
    assert balanced(report)
    assert {d["metadata"]["source"] for d in docs} == {str(damaged), str(warcs[1])}


def test_unreachable_url_is_retried_then_reported(
    warcs: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/crawl/x.warc.gz"
    params = make_params(tmp_path, url, str(warcs[1]), retries=2, retry_backoff_s=0.01, on_error="skip")
    report, docs = sample(params, tmp_path)
    assert report["files"]["failed"] == {"unreachable": 1}
    assert report["files"]["errors"][0]["path"] == url
    assert sum(f"{url}: " in r.getMessage() and "retry" in r.getMessage() for r in caplog.records) == 2
    assert docs and balanced(report)
    with pytest.raises(MlfilterError, match=rf"{url}: .*on_error: skip"):
        run_sample(dataclasses.replace(params, on_error="raise"), SEED, tmp_path / "o2", tmp_path / "r2.json")


def test_warc_over_http(warcs: list[Path], http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    (root / "a.warc.gz").write_bytes(warcs[0].read_bytes())
    local, _ = sample(make_params(tmp_path, str(warcs[0])), tmp_path, "local")
    remote, docs = sample(make_params(tmp_path, base + "a.warc.gz", work_dir=str(tmp_path / "w2")), tmp_path)
    assert remote["records"] == local["records"]
    assert {d["metadata"]["source"] for d in docs} == {base + "a.warc.gz"}


def test_finished_files_are_reused_and_the_output_replaced_whole(warcs: list[Path], tmp_path: Path) -> None:
    paths = [str(p) for p in warcs[:2]]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-00099.jsonl.zst").write_bytes(b"stale")
    finished = subprocess.Popen(["true"])
    finished.wait()
    abandoned = tmp_path / f".out.tmp-{finished.pid}"  # left by a killed run
    abandoned.mkdir()
    first, _ = sample(make_params(tmp_path, *paths, keep_work=True), tmp_path)
    assert first["files"]["processed"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00000.jsonl.zst"]
    assert not abandoned.exists()
    targets = {"en": 7, "de": 1, "es": 5, "sr": 2, "ko": 1, "ja": 3}  # other counts, same languages
    rerun, docs = sample(make_params(tmp_path, *paths, targets=targets), tmp_path)
    assert (rerun["files"]["processed"], rerun["files"]["reused"]) == (0, 2)
    fresh, fresh_docs = sample(make_params(tmp_path, *paths, targets=targets, work_dir=str(tmp_path / "w")), tmp_path)
    assert docs == fresh_docs
    assert rerun["records"] == fresh["records"]
    assert not list((tmp_path / "work").iterdir())  # keep_work: false cleans up after success


def test_a_changed_setting_is_not_served_from_old_work(warcs: list[Path], tmp_path: Path) -> None:
    first, _ = sample(make_params(tmp_path, str(warcs[0]), keep_work=True), tmp_path)
    second, _ = sample(make_params(tmp_path, str(warcs[0]), min_chars=2000, keep_work=True), tmp_path)
    assert second["files"]["processed"] == 1
    assert second["records"]["dropped"]["too_short"] > first["records"]["dropped"].get("too_short", 0)
    keys_files = sorted((tmp_path / "work").glob("*.keys.npy"))
    assert len(keys_files) == 2 and all(np.load(p).dtype.names for p in keys_files)


def test_a_failed_run_keeps_finished_files_for_the_next(warcs: list[Path], tmp_path: Path) -> None:
    damaged, _ = corrupt(warcs[2], 2)
    paths = [str(warcs[0]), str(warcs[1]), str(damaged)]
    with pytest.raises(MlfilterError, match="corrupt gzip member"):
        run_sample(make_params(tmp_path, *paths), SEED, tmp_path / "out", tmp_path / "r.json")
    report, _ = sample(make_params(tmp_path, *paths[:2]), tmp_path)
    assert (report["files"]["reused"], report["files"]["processed"]) == (2, 0)
