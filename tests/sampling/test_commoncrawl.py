"""Common Crawl by crawl id, end to end against a local HTTP server serving a listing and WARC files."""

from __future__ import annotations

import functools
import gzip
import http.server
import threading
from pathlib import Path

import pytest

from mlfilter.sampling.params import SourceParams
from mlfilter.sampling.pipeline import run_sample
from mlfilter.sampling.sources import SourceError, commoncrawl_files, draw
from tests.sampling.conftest import make_params
from tests.sampling.helpers import WarcFile, html_page, read_output, texts, warcio_offsets

CRAWL = "CC-MAIN-2024-33"
SEED = 5


def publish_crawl(root: Path, kind: str, files: int = 3) -> list[str]:
    """Write ``files`` small WARC (or WET) files and the crawl's ``<kind>.paths.gz`` listing under ``root``."""
    paths = []
    for i in range(files):
        relative = f"crawl-data/{CRAWL}/segments/1723000000.{i}/{kind}/{CRAWL}-2024080{i}-0000{i}.{kind}.gz"
        warc = WarcFile()
        for language in ("de", "es", "sr"):
            for j in range(4 * i, 4 * i + 4):
                url = f"https://{language}.example.org/{i}/{j}"
                if kind == "wet":
                    warc.conversion(url, texts(language)[j])
                else:
                    warc.response(url, html_page(f"{j}", texts(language)[j], "utf-8"))
        warc.write(root / relative)
        paths.append(relative)
    listing = root / f"crawl-data/{CRAWL}/{kind}.paths.gz"
    listing.write_bytes(gzip.compress("".join(p + "\n" for p in paths).encode()))
    return paths


def commoncrawl(base: str, kind: str = "warc", files: int = 2) -> SourceParams:
    return SourceParams(type="commoncrawl", crawl=CRAWL, files=files, format=kind, base_url=base)  # type: ignore[arg-type]


def test_draw_is_seeded_and_keeps_listing_order() -> None:
    listing = [f"crawl-data/x/{i:03d}.warc.gz" for i in range(100)]
    chosen = draw(listing, 10, seed=1)
    assert chosen == draw(listing, 10, seed=1) == sorted(chosen)
    assert len(chosen) == 10 and set(chosen) <= set(listing)
    assert chosen != draw(listing, 10, seed=2)
    assert set(draw(listing, 5, seed=1)) <= set(chosen)  # a larger draw extends a smaller one
    assert draw(listing, 1000, seed=1) == listing


@pytest.mark.parametrize("kind", ["warc", "wet"])
def test_crawl_id_end_to_end(kind: str, http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    listing = publish_crawl(root, kind)
    source = commoncrawl(base, kind)
    drawn = [base + p for p in draw(listing, 2, SEED)]
    params = make_params(tmp_path, sources=(source,), targets={"de": 3, "es": 3, "sr": 3}, workers=2)
    report = run_sample(params, SEED, tmp_path / "out", tmp_path / "report.json")
    assert report["inputs"] == drawn
    assert report["records"]["seen"] == sum(len(warcio_offsets(root / p)) for p in draw(listing, 2, SEED))
    docs = read_output(tmp_path / "out")
    assert {d["language"] for d in docs} == {"de", "es", "sr"} and len(docs) == 9
    assert {d["metadata"]["source"] for d in docs} <= set(drawn)


def test_missing_listing_names_its_url(http_root: tuple[Path, str]) -> None:
    _, base = http_root
    with pytest.raises(SourceError, match=rf"{base}crawl-data/{CRAWL}/warc\.paths\.gz: cannot read"):
        commoncrawl_files(commoncrawl(base), SEED, retries=0, backoff_s=0)


class _FlakyHandler(http.server.SimpleHTTPRequestHandler):
    """Answers 503 to the first ``failures`` requests, then serves files."""

    failures = 2

    def send_head(self):  # type: ignore[no-untyped-def]
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_error(503, "busy")
            return None
        return super().send_head()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_flaky_server_is_retried_with_backoff(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "www"
    publish_crawl(root, "warc", files=1)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_FlakyHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        params = make_params(
            tmp_path, sources=(commoncrawl(base, files=1),), targets={"de": 1}, retries=3, retry_backoff_s=0.01
        )
        report = run_sample(params, SEED, tmp_path / "out", tmp_path / "report.json")
    finally:
        server.shutdown()
        server.server_close()
    assert report["files"]["failed"] == {}
    assert report["documents_kept"] == 1
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert retries and "warc.paths.gz" in retries[0] and "retry 1 of 3" in retries[0]


def test_draw_streams_a_long_listing_and_matches_the_seeded_sort() -> None:
    import hashlib

    listing = [f"crawl-data/CC-MAIN-2024-33/segments/{i // 1000}/warc/part-{i:05d}.warc.gz" for i in range(50_000)]
    key = (7).to_bytes(8, "big", signed=True)
    best = sorted(listing, key=lambda p: hashlib.blake2b(p.encode(), digest_size=8, key=key).digest())[:25]
    consumed = []

    def stream():  # type: ignore[no-untyped-def]
        for path in listing:
            consumed.append(1)
            yield path

    assert draw(stream(), 25, seed=7) == [p for p in listing if p in set(best)]
    assert len(consumed) == len(listing)
