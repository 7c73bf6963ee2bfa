"""WARC records whose HTTP bodies are stored as sent: chunked, gzip, deflate, br — decoded before extraction."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import brotli
import pytest

from mlfilter.sampling.extract import ResiliparseExtractor
from mlfilter.sampling.filters import Dropped, SampleDocument
from mlfilter.sampling.readers import WarcDocumentReader
from mlfilter.sampling.warc import UndecodableBody, dechunk, decode_http_body, iter_warc_entries
from tests.sampling.helpers import WarcFile, html_page, record_id, texts, warcio_offsets


def chunked(body: bytes, size: int = 100) -> bytes:
    """HTTP/1.1 chunked framing with chunk extensions on some chunks, and a trailer."""
    out = b""
    for n, start in enumerate(range(0, len(body), size)):
        piece = body[start : start + size]
        out += f"{len(piece):x}{';ext=1' if n % 3 == 0 else ''}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


def raw_deflate(body: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


PAGES = {
    "plain": ("en", 0, lambda b: b, ()),
    "chunked": ("en", 1, chunked, (("Transfer-Encoding", "chunked"),)),
    "gzip": ("de", 0, gzip.compress, (("Content-Encoding", "gzip"),)),
    "chunked-gzip": (
        "de",
        1,
        lambda b: chunked(gzip.compress(b), 64),
        (("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")),
    ),
    "deflate": ("es", 0, zlib.compress, (("Content-Encoding", "deflate"),)),
    "raw-deflate": ("es", 1, raw_deflate, (("Content-Encoding", "deflate"),)),
    "br": ("en", 2, brotli.compress, (("Content-Encoding", "br"),)),
    "gzip-then-br": ("de", 2, lambda b: brotli.compress(gzip.compress(b)), (("Content-Encoding", "gzip, br"),)),
    "plain-after": ("es", 2, lambda b: b, ()),
}


@pytest.fixture
def encoded_warc(tmp_path: Path) -> Path:
    """One response per encoding, a corrupt gzip body among them, and plain records on both sides."""
    warc = WarcFile()
    for name, (language, index, encode, headers) in PAGES.items():
        body = html_page(f"Page {name}", texts(language)[index], "utf-8")
        warc.response(f"https://example.org/{name}", encode(body), headers=headers)
        if name == "gzip":
            broken = gzip.compress(body)[:-40] + b"\x00" * 40
            warc.response("https://example.org/broken", broken, headers=(("Content-Encoding", "gzip"),))
    return warc.write(tmp_path / "encoded.warc.gz")


def test_every_encoding_is_decoded_before_extraction_with_offsets_kept(encoded_warc: Path) -> None:
    reader = WarcDocumentReader(ResiliparseExtractor())
    with open(encoded_warc, "rb") as handle:
        items = list(reader.read(handle, str(encoded_warc)))
    documents = {d.url: d for d in items if isinstance(d, SampleDocument)}
    dropped = [d.reason for d in items if isinstance(d, Dropped)]
    assert sorted(dropped) == ["record_type:request"] * 10 + ["record_type:warcinfo", "undecodable_body"]
    assert len(documents) == len(PAGES), "no record next to a decoded (or undecodable) one is skipped"
    offsets = warcio_offsets(encoded_warc)
    for name, (language, index, _, _) in PAGES.items():
        document = documents[f"https://example.org/{name}"]
        expected = texts(language)[index]
        assert f"Page {name}" in document.text
        for paragraph in (p for p in expected.split("\n") if p.strip()):
            assert paragraph.strip() in document.text, name
        assert document.metadata["offset"] == offsets[record_id(f"https://example.org/{name}")]


def test_undecodable_body_is_named_and_the_next_record_is_read(encoded_warc: Path) -> None:
    with open(encoded_warc, "rb") as handle:
        entries = [e for e in iter_warc_entries(handle, str(encoded_warc)) if e.record_type == "response"]
    urls = [e.url for e in entries]
    broken = urls.index("https://example.org/broken")
    assert entries[broken].payload is None and "gzip" in (entries[broken].undecodable or "")
    assert urls[broken + 1] == "https://example.org/chunked-gzip" and entries[broken + 1].payload is not None


def test_charset_after_decoding_wrong_or_missing(tmp_path: Path) -> None:
    german, serbian = texts("de")[3], texts("sr")[0]
    warc = WarcFile()
    # A server that says utf-8 for a Latin-1 page, gzipped; and a Cyrillic windows-1251 page with no charset anywhere.
    warc.response(
        "https://example.org/latin1",
        gzip.compress(html_page("Über", german, "latin-1", meta=False)),
        "text/html; charset=utf-8",
        headers=(("Content-Encoding", "gzip"),),
    )
    warc.response(
        "https://example.org/cp1251",
        brotli.compress(html_page("Страна", serbian, "cp1251", meta=False)),
        "text/html",
        headers=(("Content-Encoding", "br"),),
    )
    path = warc.write(tmp_path / "charsets.warc.gz")
    with open(path, "rb") as handle:
        items = list(WarcDocumentReader(ResiliparseExtractor()).read(handle, str(path)))
    documents = {d.url: d.text for d in items if isinstance(d, SampleDocument)}
    assert german.split("\n")[0].strip() in documents["https://example.org/latin1"]
    assert "\ufffd" not in documents["https://example.org/latin1"]
    assert serbian.split("\n")[0].strip() in documents["https://example.org/cp1251"]


def test_decode_http_body_by_hand() -> None:
    assert dechunk(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n") == b"hello world"
    assert dechunk(b"<html>already de-chunked</html>") == b"<html>already de-chunked</html>"
    with pytest.raises(UndecodableBody, match="cut short"):
        dechunk(b"ff\r\nshort\r\n")
    assert decode_http_body(gzip.compress(b"<p>x</p>"), None, "x-gzip") == b"<p>x</p>"
    assert decode_http_body(b"<p>stored decoded</p>", None, "gzip") == b"<p>stored decoded</p>"
    assert decode_http_body(b"<p>x</p>", None, "identity") == b"<p>x</p>"
    with pytest.raises(UndecodableBody, match="br"):
        decode_http_body(b"not brotli at all", None, "br")
    with pytest.raises(UndecodableBody, match="unsupported content encoding 'compress'"):
        decode_http_body(b"x", None, "compress")
