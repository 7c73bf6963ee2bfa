"""Build the committed demo corpus from the Apache HTTP Server manual.

The input is the manual shipped by Debian's ``apache2-doc`` package
(``/usr/share/doc/apache2-doc/manual``): one directory per language, where
untranslated pages are symlinks into ``en/``. The output is a gzip-per-record
WARC/1.0 file laid out like a Common Crawl WARC: a ``warcinfo`` record, then a
``request``/``response`` pair per capture.

Captures, in order:

* every translated HTML page (regular files only), with its original bytes and
  the charset its ``<meta>`` tag declares;
* natural exact duplicates: the symlinked English copies of ``DUPLICATED_PAGES``
  as served under the other language prefixes;
* a few images, a stylesheet and a script with their real content types;
* one 301 redirect and one 404, with Apache's stock bodies.

The build is deterministic (sorted input, fixed dates, uuid5 record IDs and
zlib's fixed gzip header), so rerunning it gives a byte-identical file::

    python scripts/build_demo_corpus.py /usr/share/doc/apache2-doc/manual \\
        data/demo/apache-httpd-docs.warc.gz
"""

from __future__ import annotations

import argparse
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from io import BytesIO
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

SITE = "https://httpd.apache.org"
BASE_PATH = "/docs/2.4/"
CRAWL_START = datetime(2024, 1, 15, 12, 0, 0, tzinfo=timezone.utc)
USER_AGENT = "mlfilter-demo-builder/1.0 (synthetic capture of the Apache HTTP Server manual)"
DUPLICATED_PAGES = ("glossary.html", "license.html")
ASSETS = {
    "images/feather.png": "image/png",
    "images/left.gif": "image/gif",
    "images/mod_rewrite_fig1.svg": "image/svg+xml",
    "images/favicon.ico": "image/x-icon",
    "style/css/manual.css": "text/css",
    "style/scripts/prettify.min.js": "application/javascript",
}
MISSING_PATH = "en/mod/mod_nonexistent.html"
REDIRECT_PATH = "en/mod"
META_CHARSET = re.compile(rb"<meta[^>]+charset=([A-Za-z0-9_.:-]+)", re.IGNORECASE)
ERROR_PAGE = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>{title}</title>
</head><body>
<h1>{heading}</h1>
<p>{message}</p>
</body></html>
"""


@dataclass(frozen=True)
class Capture:
    """One fetched URL: what the WARC response record will hold."""

    path: str
    status: str
    content_type: str
    body: bytes
    extra_headers: tuple[tuple[str, str], ...] = ()

    @property
    def uri(self) -> str:
        """Absolute target URI of the capture."""
        return SITE + BASE_PATH + self.path


def language_dirs(manual: Path) -> list[Path]:
    """Return the manual's per-language directories (those holding an ``index.html``), sorted."""
    return sorted(d for d in manual.iterdir() if d.is_dir() and (d / "index.html").is_file())


def html_files(lang_dir: Path) -> list[Path]:
    """Return all ``*.html`` paths under ``lang_dir`` (files and symlinks), sorted by relative path."""
    return sorted(lang_dir.rglob("*.html"), key=lambda p: p.relative_to(lang_dir).as_posix())


def page_charset(body: bytes, source: Path) -> str:
    """Return the charset declared by the page's ``<meta>`` tag, checking that the bytes decode with it."""
    match = META_CHARSET.search(body[:2048])
    if match is None:
        raise ValueError(f"{source}: no <meta> charset declaration")
    charset = match.group(1).decode("ascii")
    body.decode(charset)
    return charset


def html_capture(manual: Path, page: Path) -> Capture:
    """Build the 200 capture of one HTML page, served with its declared charset."""
    body = page.read_bytes()
    return Capture(
        path=page.relative_to(manual).as_posix(),
        status="200 OK",
        content_type=f"text/html; charset={page_charset(body, page)}",
        body=body,
    )


def page_captures(manual: Path) -> Iterator[Capture]:
    """Yield every translated page of every language (symlinked fallbacks are skipped)."""
    for lang_dir in language_dirs(manual):
        for page in html_files(lang_dir):
            if not page.is_symlink():
                yield html_capture(manual, page)


def duplicate_captures(manual: Path) -> Iterator[Capture]:
    """Yield the symlinked English copies of ``DUPLICATED_PAGES`` served under other languages."""
    for name in DUPLICATED_PAGES:
        for lang_dir in language_dirs(manual):
            page = lang_dir / name
            if page.is_symlink():
                yield html_capture(manual, page)


def asset_captures(manual: Path) -> Iterator[Capture]:
    """Yield the non-HTML captures listed in ``ASSETS``."""
    for path, content_type in ASSETS.items():
        yield Capture(path, "200 OK", content_type, (manual / path).read_bytes())


def error_page(title: str, message: str) -> bytes:
    """Render Apache's stock error body for a status such as ``404 Not Found``."""
    heading = title.split(" ", 1)[1]
    return ERROR_PAGE.format(title=title, heading=heading, message=message).encode("iso-8859-1")


def error_captures() -> Iterator[Capture]:
    """Yield a trailing-slash 301 redirect and a 404, as Apache answers them."""
    location = SITE + BASE_PATH + REDIRECT_PATH + "/"
    content_type = "text/html; charset=iso-8859-1"
    yield Capture(
        REDIRECT_PATH,
        "301 Moved Permanently",
        content_type,
        error_page("301 Moved Permanently", f'The document has moved <a href="{location}">here</a>.'),
        (("Location", location),),
    )
    yield Capture(
        MISSING_PATH,
        "404 Not Found",
        content_type,
        error_page("404 Not Found", "The requested URL was not found on this server."),
    )


def all_captures(manual: Path) -> list[Capture]:
    """Return every capture of the corpus in write order."""
    return [
        *page_captures(manual),
        *duplicate_captures(manual),
        *asset_captures(manual),
        *error_captures(),
    ]


def record_id(kind: str, key: str) -> str:
    """Return a deterministic WARC-Record-ID derived from the record type and a key."""
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{kind}:{key}')}>"


def warc_date(when: datetime) -> str:
    """Format a WARC/1.0 date (second precision, UTC)."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_warcinfo(writer: WARCWriter, filename: str) -> str:
    """Write the leading warcinfo record and return its record ID."""
    warcinfo_id = record_id("warcinfo", filename)
    fields = {
        "isPartOf": "mlfilter-demo",
        "publisher": "mlfilter",
        "description": "Apache HTTP Server 2.4 manual (Debian apache2-doc), captured for the mlfilter demo",
        "software": "mlfilter scripts/build_demo_corpus.py",
        "format": "WARC File Format 1.0",
        "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/",
    }
    payload = "".join(f"{name}: {value}\r\n" for name, value in fields.items()).encode("utf-8")
    headers = {
        "WARC-Type": "warcinfo",
        "WARC-Date": warc_date(CRAWL_START),
        "WARC-Filename": filename,
        "WARC-Record-ID": warcinfo_id,
    }
    record = writer.create_warc_record(
        "", "warcinfo", payload=BytesIO(payload), length=len(payload), warc_headers_dict=headers
    )
    writer.write_record(record)
    return warcinfo_id


def request_headers(capture: Capture) -> StatusAndHeaders:
    """Return the HTTP/1.1 GET request a crawler would have sent for the capture."""
    headers = [
        ("Host", SITE.removeprefix("https://")),
        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Accept-Language", "en-US,en;q=0.5"),
        ("User-Agent", USER_AGENT),
    ]
    return StatusAndHeaders(f"GET {BASE_PATH}{capture.path} HTTP/1.1", headers, is_http_request=True)


def response_headers(capture: Capture, when: datetime) -> StatusAndHeaders:
    """Return the HTTP/1.1 status line and headers of the capture's response."""
    headers = [
        ("Date", format_datetime(when, usegmt=True)),
        ("Server", "Apache"),
        *capture.extra_headers,
        ("Content-Length", str(len(capture.body))),
        ("Content-Type", capture.content_type),
    ]
    return StatusAndHeaders(capture.status, headers, protocol="HTTP/1.1")


def warc_headers(kind: str, warc_id: str, when: datetime, warcinfo_id: str, uri: str) -> dict[str, str]:
    """Return the WARC headers shared by request and response records, in Common Crawl's order."""
    return {
        "WARC-Type": kind,
        "WARC-Date": warc_date(when),
        "WARC-Record-ID": warc_id,
        "WARC-Warcinfo-ID": warcinfo_id,
        "WARC-Target-URI": uri,
    }


def write_capture(writer: WARCWriter, capture: Capture, when: datetime, warcinfo_id: str) -> None:
    """Write the request record and then the response record of one capture."""
    request_id = record_id("request", capture.uri)
    request = writer.create_warc_record(
        capture.uri,
        "request",
        http_headers=request_headers(capture),
        warc_headers_dict=warc_headers("request", request_id, when, warcinfo_id, capture.uri),
    )
    response = writer.create_warc_record(
        capture.uri,
        "response",
        payload=BytesIO(capture.body),
        length=len(capture.body),
        http_headers=response_headers(capture, when),
        warc_headers_dict={
            **warc_headers("response", record_id("response", capture.uri), when, warcinfo_id, capture.uri),
            "WARC-Concurrent-To": request_id,
            "WARC-Identified-Payload-Type": capture.content_type.split(";", 1)[0],
        },
    )
    writer.write_record(request)
    writer.write_record(response)


def build_corpus(manual: Path, output: Path) -> int:
    """Write the demo WARC for ``manual`` to ``output`` and return the number of captures."""
    captures = all_captures(manual)
    uris = [capture.uri for capture in captures]
    if len(set(uris)) != len(uris):
        raise ValueError("duplicate target URIs in the capture list")
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as stream:
        writer = WARCWriter(stream, gzip=True, warc_version="1.0")
        warcinfo_id = write_warcinfo(writer, output.name)
        for index, capture in enumerate(captures, start=1):
            write_capture(writer, capture, CRAWL_START + timedelta(seconds=index), warcinfo_id)
    return len(captures)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manual", type=Path, help="apache2-doc manual folder, e.g. /usr/share/doc/apache2-doc/manual")
    parser.add_argument("output", type=Path, help="output .warc.gz path")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Build the corpus and print a one-line summary."""
    args = parse_args(argv)
    count = build_corpus(args.manual, args.output)
    print(f"wrote {count} captures ({2 * count + 1} records) to {args.output}")


if __name__ == "__main__":
    main()
