"""Test corpora for the sample stage: real texts, HTML pages in real charsets, WARC/WET files by warcio."""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from mlfilter.records import iter_records

DATA = Path(__file__).parent / "data"
TEXT_FILES = {
    "en": "fineweb-edu-en.jsonl",
    "de": "fineweb2-deu_Latn.jsonl",
    "es": "fineweb2-spa_Latn.jsonl",
    "sr": "fineweb2-srp_Cyrl.jsonl",
}


def texts(language: str) -> list[str]:
    """Real paragraphs in ``language`` (en, de, es, sr: 12 each; ko, ja: 3 each)."""
    if language in TEXT_FILES:
        return [json.loads(line)["text"] for line in (DATA / TEXT_FILES[language]).read_text("utf-8").splitlines()]
    return json.loads((DATA / "cjk.json").read_text("utf-8"))[language]


def html_page(title: str, text: str, charset: str, *, meta: bool = True) -> bytes:
    """A web page with navigation, the text as paragraphs of an article, and a footer, in ``charset``."""
    paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n") if p.strip())
    head = f'<meta charset="{charset}">' if meta else ""
    page = (
        f"<!DOCTYPE html>\n<html><head>{head}<title>{html.escape(title)}</title></head><body>"
        '<nav><a href="/">Home</a> | <a href="/about">About</a></nav>'
        f"<article><h1>{html.escape(title)}</h1>\n{paragraphs}\n</article>"
        "<footer>Contact</footer></body></html>"
    )
    return page.encode(charset)


def record_id(url: str, kind: str = "response") -> str:
    """A stable WARC-Record-ID for a URL."""
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, kind + ':' + url)}>"


@dataclass
class WarcFile:
    """Records to write with warcio, Common Crawl style (a request before each response)."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def response(
        self,
        url: str,
        body: bytes,
        content_type: str = "text/html; charset=utf-8",
        status: str = "200 OK",
        *,
        rid: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> WarcFile:
        """Add a request/response pair; ``headers`` are extra HTTP headers (the body is stored as given)."""
        self.records.append({"kind": "request", "url": url})
        self.records.append(
            {
                "kind": "response",
                "url": url,
                "body": body,
                "content_type": content_type,
                "status": status,
                "id": rid,
                "headers": headers,
            }
        )
        return self

    def conversion(self, url: str, text: str) -> WarcFile:
        """Add a WET conversion record holding plain text."""
        self.records.append({"kind": "conversion", "url": url, "body": text.encode("utf-8")})
        return self

    def write(self, path: Path, *, gzip: bool = True) -> Path:
        """Write the records (one gzip member each when ``gzip``), after a warcinfo record."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            writer = WARCWriter(handle, gzip=gzip)
            writer.write_record(writer.create_warcinfo_record(path.name, {"software": "mlfilter tests"}))
            for index, spec in enumerate(self.records):
                writer.write_record(_record(writer, spec, index))
        return path


def _record(writer: WARCWriter, spec: dict[str, Any], index: int):  # type: ignore[no-untyped-def]
    url = spec["url"]
    if spec["kind"] == "request":
        headers = StatusAndHeaders("GET / HTTP/1.1", [("Host", "example.org")], is_http_request=True)
        rid = record_id(url, f"request-{index}")
        return writer.create_warc_record(
            url, "request", http_headers=headers, warc_headers_dict={"WARC-Record-ID": rid}
        )
    if spec["kind"] == "conversion":
        return writer.create_warc_record(
            url,
            "conversion",
            payload=BytesIO(spec["body"]),
            warc_content_type="text/plain",
            warc_headers_dict={"WARC-Record-ID": record_id(url, "conversion")},
        )
    http_headers = StatusAndHeaders(
        spec["status"], [("Content-Type", spec["content_type"]), *spec["headers"]], protocol="HTTP/1.1"
    )
    return writer.create_warc_record(
        url,
        "response",
        payload=BytesIO(spec["body"]),
        http_headers=http_headers,
        warc_headers_dict={"WARC-Record-ID": spec["id"] or record_id(url)},
    )


def warcio_offsets(path: Path) -> dict[str, int]:
    """Record id → byte offset of its record (its gzip member), as warcio reports them."""
    offsets = {}
    with open(path, "rb") as handle:
        iterator = ArchiveIterator(handle)
        for record in iterator:
            offsets[record.rec_headers.get_header("WARC-Record-ID")] = iterator.get_record_offset()
    return offsets


def read_output(folder: Path) -> list[dict[str, Any]]:
    """Every document of a sample folder, in shard order."""
    return [record for shard in sorted(folder.glob("part-*")) for _, record in iter_records(str(shard))]


def multilingual_warc(path: Path, *, start: int = 0, gzip: bool = True, prefix: str = "") -> Path:
    """A WARC with pages in en/de/es/sr (UTF-8, de in ISO-8859-1 declared by HTTP), ko in EUC-KR declared
    only in ``<meta>``, ja in Shift_JIS declared nowhere, plus non-HTML, a 301, a 404, a copy of the
    first English page under another URL and a second page under the first Spanish page's URL.
    Six texts per language from ``start`` on (en, de, es, sr have 12; ko and ja always the same 3)."""
    warc = WarcFile()
    for language in ("en", "de", "es", "sr"):
        for i, text in enumerate(texts(language)[start : start + 6]):
            url = f"https://{language}.example.org/{prefix}page-{i}.html"
            if language == "de":
                warc.response(
                    url, html_page(f"Seite {i}", text, "iso-8859-1", meta=False), "text/html; charset=ISO-8859-1"
                )
            else:
                warc.response(url, html_page(f"Page {i}", text, "utf-8"))
    for i, text in enumerate(texts("ko")):
        warc.response(f"https://ko.example.org/{prefix}{i}.html", html_page(f"문서 {i}", text, "euc-kr"), "text/html")
    for i, text in enumerate(texts("ja")):
        page = html_page(f"文書 {i}", text, "shift_jis", meta=False)
        warc.response(f"https://ja.example.org/{prefix}{i}.html", page, "text/html")
    warc.response(f"https://en.example.org/{prefix}logo.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png")
    warc.response(f"https://en.example.org/{prefix}old", b"<html>Moved</html>", status="301 Moved Permanently")
    warc.response(f"https://en.example.org/{prefix}missing", b"<html>Not Found</html>", status="404 Not Found")
    warc.response(f"https://mirror.example.net/{prefix}copy.html", html_page("Page 0", texts("en")[start], "utf-8"))
    url = f"https://es.example.org/{prefix}page-0.html"
    warc.response(url, html_page("Otra", texts("es")[(start + 6) % 12], "utf-8"), rid=record_id(url, "second"))
    return warc.write(path, gzip=gzip)
