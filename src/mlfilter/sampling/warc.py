"""Streaming WARC/WET record reading with FastWARC, with byte offsets and integrity checks.

Gzip-compressed files are decompressed here, member by member, rather than inside FastWARC: that is
how a corrupt or truncated member is caught (FastWARC stops silently at a truncated one) and how each
record gets the byte offset of its gzip member — the ``offset`` Common Crawl's index uses. Memory
stays constant: one read buffer and one record payload at a time.

HTTP bodies are stored as sent (wget, warcprox, Heritrix): FastWARC reads them raw, so the record's
length check holds, and :func:`decode_http_body` then undoes the ``Transfer-Encoding`` (chunked) and the
``Content-Encoding`` (gzip, deflate, br, zstd; several in the order applied). A body that cannot be decoded
is reported on its entry (``undecodable``) and the next record is read as usual.
"""

from __future__ import annotations

import re
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import zstandard
from fastwarc.warc import ArchiveIterator, WarcRecord

from mlfilter.sampling.errors import InputFileError

READ_SIZE = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Record types whose payload can become a document.
CONTENT_RECORD_TYPES = frozenset({"response", "resource", "conversion"})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain"})
#: Payloads read into memory: those that can become documents; others are skipped chunk by chunk.
PAYLOAD_TYPES = HTML_TYPES | TEXT_TYPES


class WarcFormatError(InputFileError):
    """A WARC file is corrupt or truncated; the message names the file and the byte offset."""


class _StreamFailure(Exception):
    """Carries an error of the underlying stream (network, disk) through FastWARC unchanged."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _read_raw(raw: IO[bytes], size: int) -> bytes:
    try:
        return raw.read(size)
    except Exception as exc:
        raise _StreamFailure(exc) from exc


class GzipMemberReader:
    """A file-like view of a multi-member gzip stream that knows where each member starts.

    ``read``/``tell`` work on the decompressed bytes (what FastWARC reads); :meth:`member_offset` maps
    a decompressed position back to the compressed offset of the member holding it. A member that fails
    to inflate or that the file ends inside raises :class:`WarcFormatError` naming its offset.
    """

    def __init__(self, raw: IO[bytes], path: str) -> None:
        self._raw = raw
        self._path = path
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._member_start = 0
        self._member_has_data = False
        self._consumed = 0  # compressed bytes handed to inflaters so far
        self._pending = b""  # compressed bytes read but not yet inflated
        self._buffer = memoryview(b"")
        self._position = 0  # decompressed bytes returned by read()
        self._produced = 0  # decompressed bytes inflated so far
        self._members: deque[tuple[int, int]] = deque([(0, 0)])  # (decompressed start, compressed start)
        self._eof = False

    def tell(self) -> int:
        """Decompressed bytes read so far."""
        return self._position

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decompressed bytes (all the rest when ``size`` < 0); ``b""`` at the end."""
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(READ_SIZE):
                chunks.append(chunk)
            return b"".join(chunks)
        while not self._buffer and not self._eof:
            self._inflate_more()
        data = bytes(self._buffer[:size])
        self._buffer = self._buffer[len(data) :]
        self._position += len(data)
        return data

    def member_offset(self, position: int) -> int:
        """Compressed offset of the member that holds decompressed byte ``position``.

        Positions must be asked in increasing order: members before ``position`` are forgotten.
        """
        while len(self._members) > 1 and self._members[1][0] <= position:
            self._members.popleft()
        return self._members[0][1]

    def _inflate_more(self) -> None:
        data = self._pending or _read_raw(self._raw, READ_SIZE)
        self._pending = b""
        if not data:
            self._eof = True
            if self._member_has_data:
                raise WarcFormatError(
                    f"{self._path}: truncated gzip member at byte offset {self._member_start} "
                    "(the file ends inside it)",
                    "truncated_file",
                )
            return
        try:
            out = self._inflater.decompress(data)
        except zlib.error as exc:
            raise WarcFormatError(
                f"{self._path}: corrupt gzip member at byte offset {self._member_start}: {exc}", "corrupt_gzip"
            ) from None
        self._member_has_data = True
        self._produced += len(out)
        if self._inflater.eof:
            unused = self._inflater.unused_data
            self._consumed += len(data) - len(unused)
            self._start_member(unused)
        else:
            self._consumed += len(data)
        self._buffer = memoryview(out)

    def _start_member(self, unused: bytes) -> None:
        self._member_start = self._consumed
        self._members.append((self._produced, self._consumed))
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._member_has_data = False
        self._pending = unused


class _PlainReader:
    """``read``/``tell`` over an uncompressed (or zstandard-decompressed) stream; offsets are positions."""

    def __init__(self, raw: IO[bytes], path: str) -> None:
        self._raw = raw
        self._path = path
        self._position = 0

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        try:
            data = _read_raw(self._raw, size)
        except _StreamFailure as exc:
            if not isinstance(exc.error, zstandard.ZstdError):
                raise

            raise WarcFormatError(
                f"{self._path}: corrupt zstandard data after decompressed byte {self._position}: {exc}",
                "corrupt_file",
            ) from None
        self._position += len(data)
        return data

    @staticmethod
    def member_offset(position: int) -> int:
        return position


@dataclass
class WarcEntry:
    """One WARC record as the sample needs it; ``payload`` is the HTTP body (or block) of HTML/text records."""

    record_type: str
    record_id: str | None
    url: str | None
    date: str | None
    digest: str | None
    offset: int
    http_status: int | None = None
    content_type: str | None = None
    charset: str | None = None
    payload: bytes | None = None
    transfer_encoding: str | None = None
    content_encoding: str | None = None
    #: Why the HTTP body could not be decoded (``payload`` is then None).
    undecodable: str | None = None


class UndecodableBody(ValueError):
    """An HTTP body does not decode under its declared transfer or content encoding."""


_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]+")


def dechunk(body: bytes) -> bytes:
    """The body of a ``Transfer-Encoding: chunked`` message (RFC 9112 §7.1), chunk extensions and trailers ignored.

    A body that does not start with a chunk-size line is returned unchanged: some crawlers store bodies
    already de-chunked but keep the header. A chunk cut short raises :class:`UndecodableBody`.
    """
    first = body.split(b"\r\n", 1)[0].split(b";", 1)[0].strip()
    if not _CHUNK_SIZE.fullmatch(first):
        return body
    parts = []
    position = 0
    while True:
        end = body.find(b"\r\n", position)
        if end < 0:
            raise UndecodableBody(f"chunked body ends inside a chunk-size line at byte {position}")
        size_text = body[position:end].split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise UndecodableBody(f"invalid chunk size {size_text[:20]!r} at byte {position}")
        size = int(size_text, 16)
        start = end + 2
        if size == 0:
            return b"".join(parts)
        if start + size > len(body):
            raise UndecodableBody(f"chunk of {size} bytes at byte {start} is cut short ({len(body) - start} present)")
        parts.append(body[start : start + size])
        position = start + size
        if body[position : position + 2] == b"\r\n":
            position += 2


def _decode_content(body: bytes, coding: str) -> bytes:
    if coding in ("gzip", "x-gzip"):
        if not body.startswith(GZIP_MAGIC):
            return body  # stored decoded by the crawler, header kept
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        decoded = inflater.decompress(body)
        if not inflater.eof:
            raise UndecodableBody("content encoding gzip: the body ends inside the gzip stream")
        return decoded
    if coding == "deflate":  # RFC 9110: zlib format; some servers send raw deflate
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    if coding == "br":
        import brotli

        return brotli.decompress(body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    raise UndecodableBody(f"unsupported content encoding {coding!r}")


def decode_http_body(body: bytes, transfer_encoding: str | None, content_encoding: str | None) -> bytes:
    """The payload as the server meant it: transfer coding (chunked) removed, then content codings undone.

    Codings are comma-separated and undone last-applied first; ``identity`` is a no-op. Raises
    :class:`UndecodableBody` when the body does not decode.
    """
    if transfer_encoding and "chunked" in transfer_encoding.lower():
        body = dechunk(body)
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        try:
            body = _decode_content(body, coding)
        except UndecodableBody:
            raise
        except Exception as exc:  # zlib.error, brotli.error, ZstdError: a corrupt body
            raise UndecodableBody(f"content encoding {coding}: {exc}") from None
    return body


def iter_warc_entries(raw: IO[bytes], path: str) -> Iterator[WarcEntry]:
    """Stream the records of one WARC or WET file (gzip-compressed or not) from the binary stream ``raw``.

    Payloads are kept only for response, resource and conversion records with an HTML or plain-text
    content type and status 200; the others are skipped without holding them in memory. A corrupt or
    truncated gzip member, or a record shorter than its ``Content-Length``, raises
    :class:`WarcFormatError`.
    """
    head = raw.read(len(ZSTD_MAGIC))
    stream = _Prefixed(head, raw)
    reader: GzipMemberReader | _PlainReader
    if head.startswith(GZIP_MAGIC):
        reader = GzipMemberReader(stream, path)
    elif head == ZSTD_MAGIC:
        reader = _PlainReader(zstandard.ZstdDecompressor().stream_reader(stream), path)  # type: ignore[arg-type]
    else:
        reader = _PlainReader(stream, path)  # type: ignore[arg-type]
    records = 0
    last_offset = 0
    try:
        for entry in _entries(ArchiveIterator(reader, stream_detect=False, parse_http=True), reader, path):
            records += 1
            last_offset = entry.offset
            yield entry
    except _StreamFailure as failure:
        raise failure.error from None
    except OSError as exc:  # FastWARC's own parse errors; stream errors arrive as _StreamFailure
        raise WarcFormatError(
            f"{path}: invalid WARC data after the record at byte offset {last_offset}: {exc}", "invalid_warc"
        ) from None
    if records == 0 and reader.tell() > 0:
        raise WarcFormatError(f"{path}: not a WARC file (no WARC record found)", "invalid_warc")


def _entries(records: ArchiveIterator, reader: GzipMemberReader | _PlainReader, path: str) -> Iterator[WarcEntry]:
    for record in records:
        headers = record.headers
        entry = WarcEntry(
            record_type=str(record.record_type),
            record_id=record.record_id,
            url=headers.get("WARC-Target-URI"),
            date=headers.get("WARC-Date"),
            digest=headers.get("WARC-Payload-Digest") or headers.get("WARC-Block-Digest"),
            offset=reader.member_offset(record.stream_pos),
        )
        if entry.record_type in CONTENT_RECORD_TYPES:
            _describe_payload(entry, record)
        expected = record.content_length
        if entry.content_type in PAYLOAD_TYPES and entry.http_status in (None, 200):
            entry.payload = record.reader.read()
            present = len(entry.payload)
            _decode_payload(entry)
        else:
            present = _consume(record)
        if present < expected:
            raise WarcFormatError(
                f"{path}: truncated WARC record at byte offset {entry.offset}: "
                f"{expected} payload bytes announced, {present} present",
                "truncated_file",
            )
        yield entry


def _decode_payload(entry: WarcEntry) -> None:
    if entry.payload is None or not (entry.transfer_encoding or entry.content_encoding):
        return
    try:
        entry.payload = decode_http_body(entry.payload, entry.transfer_encoding, entry.content_encoding)
    except UndecodableBody as exc:
        entry.payload = None
        entry.undecodable = str(exc)


def _describe_payload(entry: WarcEntry, record: WarcRecord) -> None:
    if record.http_headers is not None:
        entry.transfer_encoding = record.http_headers.get("Transfer-Encoding")
        entry.content_encoding = record.http_headers.get("Content-Encoding")
        entry.http_status = record.http_headers.status_code
        entry.content_type = record.http_content_type
        entry.charset = record.http_charset if _declares_charset(record.http_headers) else None
    else:
        entry.content_type = _mime(record.headers.get("Content-Type"))
    identified = record.headers.get("WARC-Identified-Payload-Type")
    if identified:
        entry.content_type = _mime(identified)


def _consume(record: WarcRecord) -> int:
    """Skip a payload that will not be used, a chunk at a time; return its length."""
    length = 0
    while chunk := record.reader.read(READ_SIZE):
        length += len(chunk)
    return length


def _declares_charset(http_headers: object) -> bool:
    content_type = http_headers.get("Content-Type") or ""  # type: ignore[attr-defined]
    return "charset=" in content_type.lower()


def _mime(value: str | None) -> str | None:
    return value.split(";", 1)[0].strip().lower() or None if value else None


class _Prefixed:
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self._head = head
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._raw.read(size)
        head, self._head = self._head, b""
        if size is not None and 0 <= size <= len(head):
            self._head = head[size:]
            return head[:size]
        return head + self._raw.read(-1 if size is None or size < 0 else size - len(head))
