"""Streaming readers and atomic writers for sharded record files.

Formats, chosen by file suffix: JSON Lines (``.jsonl``/``.json``), gzip (``.jsonl.gz``), zstandard
(``.jsonl.zst``) and Parquet (``.parquet``). Local paths and any fsspec URL (``s3://``,
``http(s)://``) are accepted. Memory stays constant whatever the size of the input.
"""

from __future__ import annotations

import contextlib
import glob as globlib
import gzip
import io
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson
import zstandard

from mlfilter.atomic import temporary_path
from mlfilter.errors import MlfilterError

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSED_SUFFIXES = (".gz", ".zst")
PARQUET_SUFFIX = ".parquet"
OnError = Literal["raise", "skip"]
InvalidUtf8 = Literal["replace", "error"]


class RecordFormatError(MlfilterError, ValueError):
    """A record file is malformed; the message names the file and the line (or row)."""

    def __init__(self, path: str, line: int | None, message: str, reason: str = "invalid_record") -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.reason = reason
        self._message = message

    def __reduce__(self) -> tuple[type, tuple[str, int | None, str, str]]:
        return type(self), (self.path, self.line, self._message, self.reason)


@dataclass(frozen=True)
class RecordLocation:
    """Where a record came from: its file and 1-based line (or row) number."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def is_remote(path: str) -> bool:
    """True for fsspec URLs such as ``s3://bucket/key`` or ``https://host/file``."""
    return "://" in path and not path.startswith("file://")


def record_format(path: str) -> str:
    """``"jsonl"`` or ``"parquet"``, from the file name (compression suffixes are looked through)."""
    name = path.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(PARQUET_SUFFIX):
        return "parquet"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    raise ValueError(f"{path}: unknown record format (expected .jsonl[.gz|.zst] or .parquet)")


def is_record_file(path: str) -> bool:
    """True for visible files whose name says they hold records."""
    if os.path.basename(path).startswith((".", "_")):
        return False
    try:
        record_format(path)
    except ValueError:
        return False
    return True


def expand_inputs(patterns: Iterable[str]) -> list[str]:
    """Resolve files, folders and globs (local or fsspec URLs) to a sorted list of record files.

    A folder stands for every record file below it; hidden files (temporary writes) and files
    starting with ``_`` (markers) are left out. A pattern that matches nothing is an error.
    """
    found: list[str] = []
    for pattern in patterns:
        matches = _expand_remote(pattern) if is_remote(pattern) else _expand_local(pattern)
        if not matches:
            raise FileNotFoundError(f"{pattern}: no record files match")
        found.extend(matches)
    return sorted(dict.fromkeys(found))


def _expand_local(pattern: str) -> list[str]:
    if os.path.isdir(pattern):
        paths = [str(p) for p in Path(pattern).rglob("*") if p.is_file()]
        return sorted(p for p in paths if is_record_file(p))
    if globlib.has_magic(pattern):
        return sorted(p for p in globlib.glob(pattern, recursive=True) if os.path.isfile(p) and is_record_file(p))
    return [pattern] if os.path.isfile(pattern) else []


def _expand_remote(pattern: str) -> list[str]:
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(pattern)
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    if len(paths) == 1 and not globlib.has_magic(pattern) and fs.isdir(paths[0]):
        paths = [p for p in fs.find(paths[0])]
    return sorted(fs.unstrip_protocol(p) if protocol != "file" else p for p in paths if is_record_file(p))


def open_binary(path: str) -> IO[bytes]:
    """Open a local or remote file for reading as decompressed bytes (gzip and zstandard by suffix)."""
    if is_remote(path):
        import fsspec

        raw: IO[bytes] = fsspec.open(path, "rb").open()
    else:
        raw = open(path, "rb")  # noqa: SIM115 - closed with the returned stream
    compression = compression_of(path)
    if compression == "gz":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
        stream.myfileobj = raw  # type: ignore[assignment]  # GzipFile closes ``myfileobj`` on close
        return stream  # type: ignore[return-value]
    if compression == "zst":
        return io.BufferedReader(ZstdReader(raw))
    return raw


class ZstdReader(io.RawIOBase):
    """Decompress a zstandard stream of one or more frames; a stream cut inside a frame raises EOFError.

    (zstandard's own stream reader ends quietly at a truncated frame, which would lose records silently.)
    """

    def __init__(self, raw: IO[bytes], chunk_size: int = 1 << 17) -> None:
        self._raw = raw
        self._chunk_size = chunk_size
        self._decompressor = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""
        self._in_frame = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._raw.read(self._chunk_size)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstandard stream ends inside a frame (truncated file)")
                return 0
            self._pending = self._decompress(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _decompress(self, chunk: bytes) -> bytes:
        output = []
        while chunk:
            self._in_frame = True
            output.append(self._decompressor.decompress(chunk))
            if not self._decompressor.eof:
                break
            self._in_frame = False
            chunk = self._decompressor.unused_data
            self._decompressor = zstandard.ZstdDecompressor().decompressobj()
        return b"".join(output)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def compression_of(path: str | os.PathLike[str]) -> str | None:
    """``"gz"``, ``"zst"`` or ``None``, from the file name."""
    name = os.fspath(path)
    return next((suffix[1:] for suffix in COMPRESSED_SUFFIXES if name.endswith(suffix)), None)


class _GzipWriter(gzip.GzipFile):
    """A gzip stream into a new local file, closed with it; its header has no file name and mtime 0."""

    def __init__(self, path: str | os.PathLike[str], compresslevel: int) -> None:
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        super().__init__(filename="", mode="wb", compresslevel=compresslevel, fileobj=self._raw, mtime=0)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_binary_writer(path: str | os.PathLike[str], compression: str | None) -> IO[bytes]:
    """Open a local file for writing bytes, compressed with gzip (level 6) or zstandard (level 3).

    Deterministic: the same bytes written give the same file (gzip gets no file name and mtime 0 in its
    header; zstandard's frames carry neither), so identical reruns keep their DVC hashes.
    """
    if compression == "gz":
        return _GzipWriter(path, compresslevel=6)  # type: ignore[return-value]
    if compression == "zst":
        raw = open(path, "wb")  # noqa: SIM115 - closed with the stream writer
        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=True)  # type: ignore[return-value]
    return open(path, "wb")


_DECOMPRESSION_ERRORS = (EOFError, OSError, zlib.error, zstandard.ZstdError)


def iter_records(
    path: str,
    *,
    on_error: OnError = "raise",
    invalid_utf8: InvalidUtf8 = "replace",
    skipped: Counter[str] | None = None,
) -> Iterator[tuple[RecordLocation, dict[str, Any]]]:
    """Stream ``(location, record)`` pairs from one record file.

    A malformed line raises :class:`RecordFormatError` naming the file and line; with
    ``on_error="skip"`` it is counted in ``skipped`` under a named reason instead. Bytes that are
    not UTF-8 are replaced (counted as ``invalid_utf8_replaced``) or treated as an error.
    """
    counter = skipped if skipped is not None else Counter()
    if record_format(path) == "parquet":
        yield from _iter_parquet(path, on_error, counter)
        return
    line_no = 0
    try:
        with open_binary(path) as handle:
            for line_no, raw in enumerate(handle, start=1):
                record = _parse_line(path, line_no, raw, on_error, invalid_utf8, counter)
                if record is not None:
                    yield RecordLocation(path, line_no), record
    except _DECOMPRESSION_ERRORS as exc:
        error = RecordFormatError(path, line_no + 1, f"corrupt or truncated file: {exc}", "corrupt_file")
        if on_error == "raise":
            raise error from None
        counter["corrupt_file"] += 1


def count_records(paths: Iterable[str]) -> int:
    """How many records the files hold, cheaply, for a progress total: Parquet row counts from the file
    footers, non-blank lines of JSONL (decompressed, not parsed). A file that cannot be read to its end
    counts the records before the damage (reading it for real reports the damage)."""
    total = 0
    for path in paths:
        try:
            if record_format(path) == "parquet":
                import pyarrow.parquet as pq

                with open_binary(path) as source:
                    total += pq.ParquetFile(source).metadata.num_rows
                continue
            with open_binary(path) as handle:
                for line in handle:
                    if not line.isspace():
                        total += 1
        except (*_DECOMPRESSION_ERRORS, ValueError):
            continue
    return total


def _parse_line(
    path: str, line_no: int, raw: bytes, on_error: OnError, invalid_utf8: InvalidUtf8, counter: Counter[str]
) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if invalid_utf8 == "replace":
            counter["invalid_utf8_replaced"] += 1
            text = raw.decode("utf-8", errors="replace")
        else:
            return _reject(path, line_no, f"not valid UTF-8 at byte {exc.start}", "invalid_utf8", on_error, counter)
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return _reject(path, line_no, f"invalid JSON: {exc}", "invalid_json", on_error, counter)
    if not isinstance(record, dict):
        return _reject(path, line_no, "expected a JSON object", "not_an_object", on_error, counter)
    return record


def _reject(path: str, line: int, message: str, reason: str, on_error: OnError, counter: Counter[str]) -> None:
    if on_error == "raise":
        raise RecordFormatError(path, line, message, reason)
    counter[reason] += 1
    return None


def _iter_parquet(
    path: str, on_error: OnError, counter: Counter[str]
) -> Iterator[tuple[RecordLocation, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        source = open_binary(path)
        with source, pq.ParquetFile(source) as parquet:
            for batch in parquet.iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    row += 1
                    yield RecordLocation(path, row), record
    except (pa.ArrowException, OSError) as exc:
        if on_error == "raise":
            raise RecordFormatError(path, row + 1, f"unreadable Parquet: {exc}", "corrupt_file") from None
        counter["corrupt_file"] += 1


class RecordWriter:
    """Write records to one file that appears under its final name only when closed successfully.

    JSONL (optionally ``.gz``/``.zst``) is written line by line; Parquet in row groups of
    ``parquet_batch`` records. A Parquet ``schema`` (an Arrow schema: e.g. the input file's plus added
    columns) is kept exactly, and a record with a top-level key outside it is an error. Without one, the
    schema is inferred over all records of a group (every key, nested ones included), and a later group
    with a new key, a first non-null value or a nested field widens it: the rows written so far are
    rewritten under the wider schema, so no value is ever dropped. In Parquet a missing key and ``null``
    are the same thing; values of one field must share a type (else :class:`RecordFormatError`).
    """

    def __init__(self, path: str | os.PathLike[str], *, parquet_batch: int = 10_000, schema: Any | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self._tmp = temporary_path(self.path)
        self._format = record_format(str(self.path))
        self._parquet_batch = parquet_batch
        self._schema = schema
        self._pending: list[dict[str, Any]] = []
        self._parquet_writer: Any = None
        self._handle: IO[bytes] | None = None
        if self._format == "jsonl":
            self._handle = open_binary_writer(self._tmp, compression_of(self.path))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        self.count += 1
        if self._handle is not None:
            self._handle.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            return
        self._pending.append(record)
        if len(self._pending) % self._parquet_batch == 0:
            self._flush_parquet()

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        """Append many records."""
        for record in records:
            self.write(record)

    def _flush_parquet(self, final: bool = False) -> None:
        import pyarrow as pa

        if not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            inferred = None if self._schema is not None else pa.Table.from_struct_array(pa.array(rows))
            schema = self._schema if inferred is None else self._widened_schema(inferred.schema)
            if not schema.names:  # Parquet stores columns: rows without any field wait for a first field
                if final:
                    raise RecordFormatError(
                        str(self.path),
                        None,
                        f"{len(rows)} record(s) without any field: Parquet cannot hold them",
                        "schema_mismatch",
                    )
                self._pending = rows
                return
            if self._schema is not None:
                self._check_keys(rows)
            if self._parquet_writer is None or self._parquet_writer.schema != schema:
                self._open_parquet(schema)
            table = _conform(inferred, schema) if inferred is not None else None
            self._parquet_writer.write_table(table if table is not None else pa.Table.from_pylist(rows, schema=schema))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise RecordFormatError(
                str(self.path), None, f"records do not fit one Parquet schema: {exc}", "schema_mismatch"
            ) from None

    def _widened_schema(self, inferred: Any) -> Any:
        """The schema so far unified with ``inferred`` (the one of the new rows, over every key)."""
        import pyarrow as pa

        if self._parquet_writer is None:
            return inferred
        return pa.unify_schemas([self._parquet_writer.schema, inferred], promote_options="permissive")

    def _check_keys(self, rows: list[dict[str, Any]]) -> None:
        names = set(self._schema.names)
        for row in rows:
            extra = set(row) - names
            if extra:
                raise RecordFormatError(
                    str(self.path), None, f"field {sorted(extra)[0]!r} is not in the file's schema", "schema_mismatch"
                )

    def _open_parquet(self, schema: Any) -> None:
        """Start the Parquet file with ``schema``, carrying over (and widening) any rows written before."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        previous = None
        if self._parquet_writer is not None:
            self._parquet_writer.close()
            previous = self._tmp.with_name(self._tmp.name + "-narrow")
            os.replace(self._tmp, previous)
        self._parquet_writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        if previous is not None:
            with pq.ParquetFile(previous) as parquet:
                for batch in parquet.iter_batches(batch_size=self._parquet_batch):
                    table = _conform(pa.Table.from_batches([batch]), schema)
                    if table is None:
                        table = pa.Table.from_pylist(batch.to_pylist(), schema=schema)
                    self._parquet_writer.write_table(table)
            previous.unlink()

    def close(self) -> None:
        """Finish the file and move it under its final name (on an error, the unfinished file is dropped)."""
        try:
            if self._handle is not None:
                self._handle.close()
            else:
                self._flush_parquet(final=True)
                if self._parquet_writer is None:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    empty = self._schema.empty_table() if self._schema is not None else pa.table({})
                    pq.write_table(empty, self._tmp)
                else:
                    self._parquet_writer.close()
        except BaseException:
            self.abort()
            raise
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the unfinished file."""
        with contextlib.suppress(Exception):
            if self._handle is not None:
                self._handle.close()
            elif self._parquet_writer is not None:
                self._parquet_writer.close()
        self._tmp.unlink(missing_ok=True)
        self._tmp.with_name(self._tmp.name + "-narrow").unlink(missing_ok=True)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _conform(table: Any, schema: Any) -> Any:
    """``table`` cast to the wider ``schema`` column by column (missing columns null), or None when Arrow cannot.

    Arrow casts a struct to one with more or reordered fields by name in recent releases; where it cannot,
    the caller converts the rows again.
    """
    import pyarrow as pa

    if table.schema == schema:
        return table
    try:
        columns = [
            table.column(name).cast(schema.field(name).type)
            if name in table.column_names
            else pa.nulls(len(table), schema.field(name).type)
            for name in schema.names
        ]
        return pa.Table.from_arrays(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


class ShardedWriter:
    """Write records across numbered shards (``part-00000.jsonl.zst`` …), each written atomically."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        prefix: str = "part",
        suffix: str = ".jsonl.zst",
        records_per_shard: int = 100_000,
    ) -> None:
        self.folder = Path(folder)
        self.prefix = prefix
        self.suffix = suffix
        self.records_per_shard = records_per_shard
        self.shards: list[Path] = []
        self.count = 0
        self._current: RecordWriter | None = None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record, starting a new shard when the current one is full."""
        if self._current is None or self._current.count >= self.records_per_shard:
            self._rotate()
        assert self._current is not None
        self._current.write(record)
        self.count += 1

    def _rotate(self) -> None:
        if self._current is not None:
            self._current.close()
        path = self.folder / f"{self.prefix}-{len(self.shards):05d}{self.suffix}"
        self.shards.append(path)
        self._current = RecordWriter(path)

    def close(self) -> None:
        """Finish the last shard."""
        if self._current is not None:
            self._current.close()
            self._current = None

    def abort(self) -> None:
        """Drop the shard in progress (finished shards stay)."""
        if self._current is not None:
            self._current.abort()
            self._current = None

    def __enter__(self) -> ShardedWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
