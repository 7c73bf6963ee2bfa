"""Fixtures of the sample-stage tests: a local HTTP server and params factories."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlfilter.sampling.params import SampleParams, SourceParams


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFILTER_PROGRESS", "0")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and its base URL (ending in ``/``)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def make_params(tmp_path: Path, *paths: str, source_type: str = "warc", **overrides: object) -> SampleParams:
    """Sample params for tests: fast extractor, one in-process worker, a work folder under ``tmp_path``."""
    values: dict[str, object] = {
        "targets": {"en": 3, "de": 3, "es": 3, "sr": 3, "ko": 2, "ja": 2},
        "extractor": "resiliparse",
        "min_chars": 100,
        "workers": 1,
        "retries": 0,
        "work_dir": str(tmp_path / "work"),
    }
    values.update(overrides)
    if "sources" not in values:
        values["sources"] = (SourceParams(type=source_type, paths=tuple(paths)),)  # type: ignore[arg-type]
    return SampleParams(**values)  # type: ignore[arg-type]
