"""``s3://`` sources through fsspec/s3fs, against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlfilter.sampling.params import SourceParams
from mlfilter.sampling.pipeline import run_sample
from tests.sampling.conftest import make_params
from tests.sampling.helpers import multilingual_warc, read_output, warcio_offsets

CRAWL = "CC-MAIN-2024-33"


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A ``commoncrawl`` bucket on a local moto server, with fsspec pointed at it."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] (test extra) serves S3 locally")
    s3fs = pytest.importorskip("s3fs", reason="s3fs (test extra) reads s3:// paths")
    import fsspec

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": f"http://{host}:{port}"})
    s3fs.S3FileSystem.clear_instance_cache()
    fs = fsspec.filesystem("s3")
    fs.mkdir("commoncrawl")
    try:
        yield fs
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_commoncrawl_and_globs_on_s3(s3_bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fs = s3_bucket
    local = multilingual_warc(tmp_path / "a.warc.gz")
    relative = f"crawl-data/{CRAWL}/segments/1/warc/{CRAWL}-00000.warc.gz"
    fs.pipe(f"commoncrawl/{relative}", local.read_bytes())
    fs.pipe(f"commoncrawl/crawl-data/{CRAWL}/warc.paths.gz", gzip.compress(f"{relative}\n".encode()))
    sources = (
        SourceParams(type="commoncrawl", crawl=CRAWL, files=1, base_url="s3://commoncrawl/"),
        SourceParams(type="warc", paths=(f"s3://commoncrawl/crawl-data/{CRAWL}/segments/*/warc/*.warc.gz",)),
    )
    report = run_sample(make_params(tmp_path, sources=sources), 1, tmp_path / "out", tmp_path / "r.json")
    assert report["inputs"] == [f"s3://commoncrawl/{relative}"]  # named twice, read once
    assert report["records"]["seen"] == len(warcio_offsets(local))
    assert {d["metadata"]["source"] for d in read_output(tmp_path / "out")} == {f"s3://commoncrawl/{relative}"}
