"""HTML → main text: charset decoding and the two extractors (trafilatura, resiliparse)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

from resiliparse.parse.encoding import bytes_to_str, detect_encoding

ExtractorName = Literal["trafilatura", "resiliparse"]
UTF8_BOM = b"\xef\xbb\xbf"


def html_encoding(payload: bytes, declared: str | None) -> str:
    """The encoding to decode an HTML payload with.

    A byte-order mark wins, then the charset the server declared, then the page's ``<meta charset>``,
    then uchardet's guess (names follow the WHATWG encoding spec, e.g. ``iso-8859-1`` → ``cp1252``).
    """
    if payload.startswith(UTF8_BOM):
        return "utf-8"
    if declared:
        return declared
    return detect_encoding(payload, from_html_meta=True)


def decode_html(payload: bytes, declared: str | None = None) -> str:
    """Decode an HTML payload to text (see :func:`html_encoding`); undecodable bytes are replaced.

    A declared charset that Python does not know, or that the bytes are not valid in (a server saying
    ``utf-8`` for a Latin-1 page), falls back to the page's ``<meta>`` or a guess.
    """
    if declared and not payload.startswith(UTF8_BOM):
        try:
            payload.decode(declared)
        except (LookupError, UnicodeDecodeError):
            declared = None
    return bytes_to_str(payload, html_encoding(payload, declared), errors="replace")


class ExtractionTimeout(BaseException):
    """An extraction ran past its time limit (a ``BaseException``, so extractors cannot swallow it)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`ExtractionTimeout` in the block after ``seconds`` (0: no limit).

    Uses ``SIGALRM``, so the limit holds in a process's main thread only (where workers run); elsewhere
    the block runs without one.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise ExtractionTimeout(f"extraction took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Extractor(Protocol):
    """Turns one HTML page into its main text (``""`` when it has none)."""

    name: str

    def extract(self, html: str) -> str:
        """The main text of ``html``."""
        ...

    def start_file(self) -> None:
        """Forget state carried between documents, so each file's output does not depend on the last."""
        ...


class TrafilaturaExtractor:
    """trafilatura's ``extract`` with the settings of FineWeb and datatrove's ``Trafilatura`` step.

    ``deduplicate=True`` makes trafilatura drop text segments it has seen many times before, through a
    cache shared by the whole process; :meth:`start_file` empties it, so a file's text is the same
    whichever worker reads it and whatever it read before. Pages without main text are counted by the
    stage (``no_text``), so trafilatura's own warnings about them are silenced.
    """

    name = "trafilatura"

    def __init__(self, *, favor_precision: bool = True, include_comments: bool = False, deduplicate: bool = True):
        self.options = {
            "favor_precision": favor_precision,
            "include_comments": include_comments,
            "deduplicate": deduplicate,
        }
        logging.getLogger("trafilatura").setLevel(logging.ERROR)

    def extract(self, html: str) -> str:
        """Main text by trafilatura (``""`` when it finds none)."""
        from trafilatura import extract

        return extract(html, **self.options) or ""

    def start_file(self) -> None:
        """Empty trafilatura's deduplication cache (its other caches only memoize pure functions)."""
        from trafilatura.deduplication import LRU_TEST

        LRU_TEST.clear()


class ResiliparseExtractor:
    """Resiliparse's main-content heuristics: an order of magnitude faster than trafilatura."""

    name = "resiliparse"

    def extract(self, html: str) -> str:
        """Main text by resiliparse, keeping paragraphs and list bullets, without alt texts and links."""
        from resiliparse.extract.html2text import extract_plain_text

        return extract_plain_text(
            html,
            main_content=True,
            preserve_formatting=True,
            list_bullets=True,
            alt_texts=False,
            links=False,
            form_fields=False,
            noscript=False,
            comments=False,
        )

    def start_file(self) -> None:
        """Resiliparse keeps no state between documents."""


def make_extractor(name: ExtractorName) -> Extractor:
    """The extractor named in params."""
    if name == "trafilatura":
        return TrafilaturaExtractor()
    if name == "resiliparse":
        return ResiliparseExtractor()
    raise ValueError(f"unknown extractor {name!r}")
