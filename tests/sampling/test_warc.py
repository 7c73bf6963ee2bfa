"""Streaming WARC reading: offsets, payloads, and errors on damaged files."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
import zstandard

from mlfilter.sampling.readers import document_id
from mlfilter.sampling.warc import WarcEntry, WarcFormatError, iter_warc_entries
from tests.sampling.helpers import multilingual_warc, record_id, texts, warcio_offsets


def entries(data: bytes, path: str = "test.warc.gz") -> list:
    return list(iter_warc_entries(io.BytesIO(data), path))


@pytest.fixture(scope="module")
def warc_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return multilingual_warc(tmp_path_factory.mktemp("warc") / "multi.warc.gz")


def test_offsets_are_those_of_the_gzip_members(warc_path: Path) -> None:
    expected = warcio_offsets(warc_path)
    found = {entry.record_id: entry.offset for entry in entries(warc_path.read_bytes())}
    assert found == expected


def test_response_fields(warc_path: Path) -> None:
    by_url = {(e.record_type, e.url): e for e in entries(warc_path.read_bytes())}
    german = by_url["response", "https://de.example.org/page-0.html"]
    assert (german.http_status, german.content_type, german.charset) == (200, "text/html", "iso-8859-1")
    assert german.record_id == record_id("https://de.example.org/page-0.html")
    assert texts("de")[0].split("\n")[0][:40].encode("iso-8859-1") in german.payload
    korean = by_url["response", "https://ko.example.org/0.html"]
    assert korean.charset is None  # declared in <meta> only
    assert by_url["response", "https://en.example.org/old"].http_status == 301
    assert by_url["request", "https://en.example.org/old"].payload is None


def test_uncompressed_and_zstandard_warcs_give_the_same_records(warc_path: Path) -> None:
    plain = gzip.decompress(warc_path.read_bytes())
    gz_ids = [e.record_id for e in entries(warc_path.read_bytes())]
    assert [e.record_id for e in entries(plain, "test.warc")] == gz_ids
    assert [e.record_id for e in entries(zstandard.ZstdCompressor().compress(plain), "test.warc.zst")] == gz_ids


def test_corrupt_gzip_member_names_file_and_offset(warc_path: Path) -> None:
    offsets = sorted(warcio_offsets(warc_path).values())
    damaged_member = offsets[20]
    data = bytearray(warc_path.read_bytes())
    for i in range(damaged_member + 30, damaged_member + 60):
        data[i] ^= 0x5A
    read = []
    with pytest.raises(
        WarcFormatError, match=rf"^x/multi\.warc\.gz: corrupt gzip member at byte offset {damaged_member}"
    ):
        for entry in iter_warc_entries(io.BytesIO(bytes(data)), "x/multi.warc.gz"):
            read.append(entry.offset)
    assert read == offsets[:20]


def test_truncated_file_names_the_last_member(warc_path: Path) -> None:
    offsets = sorted(warcio_offsets(warc_path).values())
    data = warc_path.read_bytes()[: offsets[-1] + 40]
    with pytest.raises(WarcFormatError, match=rf"truncated gzip member at byte offset {offsets[-1]}") as error:
        entries(data)
    assert error.value.reason == "truncated_file"


def test_truncated_uncompressed_record(warc_path: Path) -> None:
    plain = gzip.decompress(warc_path.read_bytes())
    with pytest.raises(WarcFormatError, match="truncated WARC record at byte offset") as error:
        entries(plain[: len(plain) - 100], "test.warc")
    assert error.value.reason == "truncated_file"


def test_a_file_that_is_no_warc() -> None:
    with pytest.raises(WarcFormatError, match="invalid WARC data") as error:
        entries(b"<html><body>not a WARC</body></html>\n" * 20, "page.warc")
    assert error.value.reason == "invalid_warc"


def test_payloads_that_cannot_become_documents_are_not_kept(warc_path: Path) -> None:
    kept = {e.url: e.payload is not None for e in entries(warc_path.read_bytes()) if e.record_type == "response"}
    assert kept["https://en.example.org/page-0.html"]
    assert not kept["https://en.example.org/logo.png"]
    assert not kept["https://en.example.org/missing"]


def test_a_record_without_id_gets_one_from_url_and_digest() -> None:
    entry = WarcEntry("response", None, "https://x.org/a", None, "sha1:ABC", 0, payload=b"<html></html>")
    same = WarcEntry("response", None, "https://x.org/a", None, "sha1:ABC", 99)
    other = WarcEntry("response", None, "https://x.org/b", None, "sha1:ABC", 0)
    assert document_id(entry) == document_id(same) != document_id(other)
    assert document_id(entry).startswith("sha1:")
    with_id = WarcEntry("response", "<urn:uuid:1234>", "https://x.org/a", None, None, 0)
    assert document_id(with_id) == "urn:uuid:1234"
