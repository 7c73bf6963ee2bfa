"""Charset handling and HTML → text extraction."""

from __future__ import annotations

import codecs
import time
from pathlib import Path

import pytest

from mlfilter.sampling.extract import (
    ExtractionTimeout,
    ResiliparseExtractor,
    TrafilaturaExtractor,
    decode_html,
    html_encoding,
    time_limit,
)
from mlfilter.sampling.filters import Dropped
from mlfilter.sampling.readers import WarcDocumentReader
from tests.sampling.helpers import WarcFile, html_page, texts


def test_a_byte_order_mark_wins_over_the_declared_charset() -> None:
    assert html_encoding(b"\xef\xbb\xbf<html></html>", "iso-8859-1") == "utf-8"


def test_declared_charset_is_used() -> None:
    german = texts("de")[0]
    page = html_page("Seite", german, "iso-8859-1", meta=False)
    assert german.split("\n")[0][:60] in decode_html(page, "iso-8859-1")


def test_meta_charset_is_read_when_the_server_declares_none() -> None:
    korean = texts("ko")[0]
    page = html_page("문서", korean, "euc-kr")
    assert codecs.lookup(html_encoding(page, None)).name == "euc_kr"
    assert korean in decode_html(page)


def test_an_unknown_declared_charset_falls_back_to_the_page() -> None:
    korean = texts("ko")[1]
    assert korean in decode_html(html_page("문서", korean, "euc-kr"), "x-no-such-charset")


def test_undeclared_charset_is_detected() -> None:
    japanese = texts("ja")[1]
    page = html_page("文書", japanese, "shift_jis", meta=False)
    assert japanese in decode_html(page)


@pytest.mark.parametrize("extractor", [TrafilaturaExtractor(), ResiliparseExtractor()], ids=lambda e: e.name)
def test_extractors_return_the_article(extractor: TrafilaturaExtractor | ResiliparseExtractor) -> None:
    text = "\n".join(texts("en")[:2])
    extracted = extractor.extract(decode_html(html_page("A title", text, "utf-8")))
    for paragraph in text.split("\n"):
        if len(paragraph) > 80:
            assert paragraph.strip()[:80] in extracted
    assert "Contact" not in extracted


def test_trafilatura_output_of_a_file_does_not_depend_on_earlier_files() -> None:
    extractor = TrafilaturaExtractor()
    page = decode_html(html_page("Title", "\n".join(texts("en")[:3]), "utf-8"))
    first = extractor.extract(page)
    assert first
    for _ in range(4):  # trafilatura's deduplication drops segments it has seen too often in this process
        extractor.extract(page)
    assert extractor.extract(page) == ""
    extractor.start_file()
    assert extractor.extract(page) == first


def test_time_limit_interrupts_a_slow_block() -> None:
    start = time.perf_counter()
    with pytest.raises(ExtractionTimeout), time_limit(0.05):
        while True:
            sum(range(1000))
    assert time.perf_counter() - start < 2
    with time_limit(0):
        time.sleep(0.01)


class _SlowExtractor:
    """Stands in for an extractor stuck on a pathological page."""

    name = "slow"

    def extract(self, html: str) -> str:
        try:
            time.sleep(5)
        except Exception:  # a library's broad except must not swallow the timeout
            return "swallowed"
        return "never"

    def start_file(self) -> None:
        pass


def test_a_page_past_the_time_limit_is_dropped(tmp_path: Path) -> None:
    path = WarcFile().response("https://x.org/a", html_page("A", texts("en")[0], "utf-8")).write(tmp_path / "a.warc.gz")
    reader = WarcDocumentReader(_SlowExtractor(), timeout_s=0.1)
    with open(path, "rb") as raw:
        items = list(reader.read(raw, str(path)))
    assert Dropped("extraction_timeout") in items
