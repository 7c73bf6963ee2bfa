"""Input files of the sample: Common Crawl listings, WARC/WET paths and globs, document files.

Local paths, ``http(s)://`` and ``s3://`` (through fsspec/s3fs) are all streamed; remote reads that
fail for a network reason are retried with exponential backoff before the file counts as unreachable.
"""

from __future__ import annotations

import glob as globlib
import gzip
import hashlib
import heapq
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TypeVar

from mlfilter.errors import MlfilterError
from mlfilter.records import expand_inputs, is_remote
from mlfilter.sampling.params import SourceParams

T = TypeVar("T")
log = logging.getLogger("mlfilter.sample")

WARC_SUFFIXES = (".warc", ".warc.gz", ".warc.zst", ".wet", ".wet.gz", ".wet.zst")
FileKind = Literal["warc", "documents"]


@dataclass(frozen=True)
class InputFile:
    """One file to read: its path or URL, how to read it, and (for documents) the field mapping."""

    path: str
    kind: FileKind
    fields: tuple[tuple[str, str], ...] = ()


class SourceError(MlfilterError):
    """A source cannot be resolved to files (a listing is unreachable, a glob matches nothing)."""


def is_warc_file(path: str) -> bool:
    """True for visible files named like WARC or WET files."""
    name = os.path.basename(path)
    return not name.startswith((".", "_")) and name.lower().endswith(WARC_SUFFIXES)


def expand_warc_paths(patterns: Iterable[str]) -> list[str]:
    """Resolve WARC/WET files, folders and globs (local or fsspec URLs) to a sorted list of files.

    Folders and globs keep only files named like WARC/WET files; a file named explicitly is taken as
    it is. ``http(s)://`` URLs cannot be listed and are taken as they are. A pattern matching nothing
    is an error.
    """
    found: list[str] = []
    for pattern in patterns:
        if pattern.startswith(("http://", "https://")):
            matches = [pattern]
        elif is_remote(pattern):
            matches = _expand_remote(pattern)
        elif os.path.isdir(pattern):
            matches = sorted(str(p) for p in Path(pattern).rglob("*") if p.is_file() and is_warc_file(str(p)))
        elif globlib.has_magic(pattern):
            matches = sorted(p for p in globlib.glob(pattern, recursive=True) if os.path.isfile(p) and is_warc_file(p))
        else:
            matches = [pattern] if os.path.isfile(pattern) else []
        if not matches:
            raise SourceError(f"{pattern}: no WARC/WET files match")
        found.extend(matches)
    return sorted(dict.fromkeys(found))


def _expand_remote(pattern: str) -> list[str]:
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(pattern)
    if len(paths) == 1 and not globlib.has_magic(pattern):
        if fs.isdir(paths[0]):
            paths = fs.find(paths[0])
        else:
            return [pattern]
    return sorted(fs.unstrip_protocol(p) for p in paths if is_warc_file(p))


def open_stream(path: str) -> IO[bytes]:
    """Open a local file or URL for sequential binary reading (HTTP is streamed, not range-requested)."""
    if not is_remote(path):
        return open(path, "rb")
    import fsspec

    fs, fs_path = fsspec.core.url_to_fs(path)
    options = {"block_size": 0} if path.startswith(("http://", "https://")) else {}
    return fs.open(fs_path, "rb", **options)


def is_transient(error: BaseException, path: str) -> bool:
    """True when reading ``path`` failed for a reason that a retry may cure (network, server errors).

    fsspec reports an HTTP connection failure as ``FileNotFoundError`` raised from the network error:
    the cause decides.
    """
    if isinstance(error, FileNotFoundError) and error.__cause__ is not None:
        return is_transient(error.__cause__, path)
    if not is_remote(path) or isinstance(error, FileNotFoundError | PermissionError | MlfilterError):
        return False
    import asyncio

    import aiohttp

    return isinstance(error, OSError | TimeoutError | asyncio.TimeoutError | aiohttp.ClientError)


def with_retries(action: Callable[[], T], path: str, *, retries: int, backoff_s: float) -> T:
    """Run ``action``; retry transient failures of ``path`` up to ``retries`` times, waiting
    ``backoff_s``, then twice that, and so on. The last failure propagates."""
    attempt = 0
    while True:
        try:
            return action()
        except Exception as exc:
            if attempt >= retries or not is_transient(exc, path):
                raise
            delay = backoff_s * 2**attempt
            attempt += 1
            log.warning("%s: %s; retry %d of %d in %.1f s", path, exc, attempt, retries, delay)
            time.sleep(delay)


def commoncrawl_listing(source: SourceParams) -> str:
    """URL of the crawl's ``warc.paths.gz`` or ``wet.paths.gz``."""
    return f"{source.base_url.rstrip('/')}/crawl-data/{source.crawl}/{source.format}.paths.gz"


def draw(paths: Iterable[str], count: int, seed: int) -> list[str]:
    """``count`` of ``paths`` chosen by a seeded hash (the same for the same seed and listing), in listing order.

    ``paths`` is read once as a stream and only the ``count`` best-ranked are held (``heapq.nsmallest``), so a
    listing of tens of thousands of files is never in memory whole.
    """
    key = seed.to_bytes(8, "big", signed=True)

    def rank(item: tuple[int, str]) -> bytes:
        return hashlib.blake2b(item[1].encode("utf-8"), digest_size=8, key=key).digest()

    return [path for _, path in sorted(heapq.nsmallest(count, enumerate(paths), key=rank))]


def commoncrawl_files(source: SourceParams, seed: int, *, retries: int, backoff_s: float) -> list[str]:
    """URLs of the ``source.files`` WARC/WET files drawn from the crawl listing with ``seed``.

    The listing is streamed: only the drawn files are kept.
    """
    listing = commoncrawl_listing(source)
    listed = 0

    def draw_from_listing() -> list[str]:
        nonlocal listed
        listed = 0

        def lines() -> Iterator[str]:
            nonlocal listed
            with open_stream(listing) as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
                for line in text:
                    if line.strip():
                        listed += 1
                        yield line.strip()

        return draw(lines(), source.files, seed)

    try:
        paths = with_retries(draw_from_listing, listing, retries=retries, backoff_s=backoff_s)
    except Exception as exc:
        if isinstance(exc, OSError | EOFError) or is_transient(exc, listing):
            raise SourceError(f"{listing}: cannot read the Common Crawl listing: {exc}") from None
        raise
    if listed < source.files:
        log.warning("%s lists %d files, fewer than the %d asked for; using all", listing, listed, source.files)
    base = source.base_url.rstrip("/")
    return [f"{base}/{path.lstrip('/')}" for path in paths]


def resolve_inputs(sources: Iterable[SourceParams], seed: int, *, retries: int, backoff_s: float) -> list[InputFile]:
    """Every input file of the sample, in a fixed order: sources in params order, files sorted in each.

    A file named by two sources is read once (the first one's way).
    """
    files: dict[str, InputFile] = {}
    for source in sources:
        if source.type == "commoncrawl":
            paths = commoncrawl_files(source, seed, retries=retries, backoff_s=backoff_s)
            found = [InputFile(p, "warc") for p in paths]
        elif source.type == "warc":
            found = [InputFile(p, "warc") for p in expand_warc_paths(source.paths)]
        else:
            try:
                paths = expand_inputs(source.paths)
            except FileNotFoundError as exc:
                raise SourceError(str(exc)) from None
            found = [InputFile(p, "documents", tuple(sorted(source.fields.items()))) for p in paths]
        for item in found:
            files.setdefault(item.path, item)
    return list(files.values())


def input_size(path: str) -> int | None:
    """The size of ``path`` in bytes: from the file system, or remotely as the server states it (an HTTP
    ``HEAD``, an S3 ``HeadObject``); None where it cannot be known (the progress bar then counts files)."""
    if not is_remote(path):
        try:
            return os.path.getsize(path)
        except OSError:
            return None
    import fsspec

    try:
        fs, fs_path = fsspec.core.url_to_fs(path)
        size = fs.size(fs_path)
    except Exception:  # unreachable or refusing HEAD: reading the file reports why
        return None
    return int(size) if size is not None else None


def file_identity(path: str) -> str:
    """What identifies the content of ``path`` for resuming: size and mtime locally, the URL remotely."""
    if is_remote(path):
        return path
    stat = os.stat(path)
    return f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"
