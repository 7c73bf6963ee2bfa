"""Record and document I/O: round trips, malformed input, counted skips, atomic writes, duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from mlfilter.documents import Document, DuplicateIdError, read_documents
from mlfilter.records import RecordFormatError, RecordWriter, ShardedWriter, count_records, expand_inputs, iter_records

SUFFIXES = [".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"]


def _documents(n: int) -> list[dict]:
    return [
        Document(
            id=f"doc-{i}",
            text=f"Text {i} with ünïcödé, 日本語 and {{braces}}",
            url=f"https://example.org/{i}",
            language="en",
            metadata={"source": "test", "offset": i},
        ).to_record()
        for i in range(n)
    ]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    records = _documents(25)
    path = tmp_path / f"docs{suffix}"
    with RecordWriter(path, parquet_batch=10) as writer:
        writer.write_many(records)
    assert [record for _, record in iter_records(str(path))] == records
    read = [doc.to_record() for _, doc in read_documents([str(path)])]
    assert read == records


def test_sharded_writer_and_folder_input(tmp_path: Path) -> None:
    with ShardedWriter(tmp_path / "out", records_per_shard=10) as writer:
        for record in _documents(25):
            writer.write(record)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["part-00000.jsonl.zst", "part-00001.jsonl.zst", "part-00002.jsonl.zst"]
    (tmp_path / "out" / "_SUCCESS").write_text("")
    (tmp_path / "out" / ".part-00003.jsonl.zst.tmp-1").write_text("partial")
    assert [Path(p).name for p in expand_inputs([str(tmp_path / "out")])] == names
    ids = [doc.id for _, doc in read_documents([str(tmp_path / "out")])]
    assert ids == [f"doc-{i}" for i in range(25)]


def test_glob_and_missing_input(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl.gz", "c.txt"):
        with RecordWriter(tmp_path / name) if name != "c.txt" else open(tmp_path / name, "w"):
            pass
    assert [Path(p).name for p in expand_inputs([str(tmp_path / "*")])] == ["a.jsonl.gz", "b.jsonl"]
    with pytest.raises(FileNotFoundError, match="no record files match"):
        expand_inputs([str(tmp_path / "nothing-*.jsonl")])


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_malformed_line_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    _write_lines(path, [b'{"id": "1", "text": "ok"}', b"", b'{"id": "2", "text": "broken', b'{"id": "3", "text": "x"}'])
    with pytest.raises(RecordFormatError) as error:
        list(read_documents([str(path)]))
    assert str(error.value).startswith(f"{path}:3: invalid JSON")
    assert error.value.line == 3


@pytest.mark.parametrize(
    ("line", "message", "reason"),
    [
        (b'{"text": "no id"}', "field 'id' is missing", "missing_field"),
        (b'{"id": "9", "text": 5}', "field 'text' must be str, got int", "bad_field_type"),
        (b'["not", "an", "object"]', "expected a JSON object", "not_an_object"),
        (b'{"id": "1", "text": "again"}', "duplicate document id '1'", "duplicate_id"),
    ],
)
def test_bad_records_raise_or_are_counted(tmp_path: Path, line: bytes, message: str, reason: str) -> None:
    path = tmp_path / "docs.jsonl"
    _write_lines(path, [b'{"id": "1", "text": "first"}', line, b'{"id": "2", "text": "last"}'])
    with pytest.raises((RecordFormatError, DuplicateIdError), match=f"{path}:2: {message}"):
        list(read_documents([str(path)]))
    skipped: Counter[str] = Counter()
    ids = [doc.id for _, doc in read_documents([str(path)], on_error="skip", skipped=skipped)]
    assert ids == ["1", "2"]
    assert skipped == Counter({reason: 1})


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    _write_lines(tmp_path / "a.jsonl", [b'{"id": "x", "text": "one"}'])
    _write_lines(tmp_path / "b.jsonl", [b'{"id": "x", "text": "two"}'])
    with pytest.raises(DuplicateIdError, match=r"b.jsonl:1: duplicate document id 'x'"):
        list(read_documents([str(tmp_path)]))
    assert len(list(read_documents([str(tmp_path)], check_duplicates=False))) == 2


def test_field_mapping_reads_other_schemas(tmp_path: Path) -> None:
    _write_lines(tmp_path / "fw.jsonl", [b'{"document_id": 17, "content": "hello", "lang": "de"}'])
    fields = {"id": "document_id", "text": "content", "language": "lang"}
    [(location, doc)] = list(read_documents([str(tmp_path / "fw.jsonl")], fields=fields))
    assert (doc.id, doc.text, doc.language, location.line) == ("17", "hello", "de", 1)


def test_invalid_utf8_is_replaced_and_counted_or_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    _write_lines(path, [b'{"id": "1", "text": "caf\xe9"}', b'{"id": "2", "text": "fine"}'])
    skipped: Counter[str] = Counter()
    docs = [doc for _, doc in read_documents([str(path)], skipped=skipped)]
    assert docs[0].text == "caf\ufffd"
    assert skipped == Counter({"invalid_utf8_replaced": 1})
    with pytest.raises(RecordFormatError, match=rf"{path}:1: not valid UTF-8 at byte 24"):
        list(read_documents([str(path)], invalid_utf8="error"))
    skipped.clear()
    docs = [doc for _, doc in read_documents([str(path)], invalid_utf8="error", on_error="skip", skipped=skipped)]
    assert [d.id for d in docs] == ["2"]
    assert skipped == Counter({"invalid_utf8": 1})


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_compressed_file_is_reported_with_file_and_line(tmp_path: Path, suffix: str) -> None:
    whole = tmp_path / f"whole{suffix}"
    with RecordWriter(whole) as writer:
        writer.write_many({"id": str(i), "text": f"some text here {i}"} for i in range(20000))
    data = whole.read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordFormatError, match=rf"{path}:\d+: corrupt or truncated file"):
        list(read_documents([str(path)]))
    skipped: Counter[str] = Counter()
    docs = list(read_documents([str(path)], on_error="skip", skipped=skipped))
    assert len(docs) < 20000
    assert skipped == Counter({"corrupt_file": 1})


def test_concatenated_zstd_frames_are_read_whole(tmp_path: Path) -> None:
    part = tmp_path / "part.jsonl.zst"
    with RecordWriter(part) as writer:
        writer.write_many(_documents(5))
    (tmp_path / "both.jsonl.zst").write_bytes(part.read_bytes() * 2)
    assert len(list(iter_records(str(tmp_path / "both.jsonl.zst")))) == 10


def test_remote_http_input(tmp_path: Path, http_server_root) -> None:
    root, base_url = http_server_root
    with RecordWriter(root / "remote.jsonl.zst") as writer:
        writer.write_many(_documents(3))
    docs = [doc.id for _, doc in read_documents([f"{base_url}/remote.jsonl.zst"])]
    assert docs == ["doc-0", "doc-1", "doc-2"]


@pytest.mark.parametrize("suffix", [".jsonl.zst", ".parquet"])
def test_writer_killed_midway_leaves_no_file_under_final_name(tmp_path: Path, suffix: str) -> None:
    final = tmp_path / f"out{suffix}"
    script = textwrap.dedent(
        f"""
        import sys, time
        from mlfilter.records import RecordWriter
        with RecordWriter({str(final)!r}, parquet_batch=100) as writer:
            for i in range(10**9):
                writer.write({{"id": str(i), "text": "x" * 100}})
                if i == 5000:
                    print("writing", flush=True)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not final.exists()
    leftovers = list(tmp_path.iterdir())
    assert leftovers and all(p.name.startswith(".") for p in leftovers)
    with pytest.raises(FileNotFoundError):
        expand_inputs([str(tmp_path)])


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_compressed_files_are_deterministic(tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Identical records give identical bytes whatever the file name, process and time (so DVC hashes hold)."""
    records = _documents(50)
    first, second = tmp_path / "one" / f"labels{suffix}", tmp_path / "two" / f"other{suffix}"
    with RecordWriter(first) as writer:
        writer.write_many(records)
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    with RecordWriter(second) as writer:
        writer.write_many(records)
    assert first.read_bytes() == second.read_bytes()
    assert [record for _, record in iter_records(str(second))] == records
    if suffix == ".jsonl.gz":
        header = first.read_bytes()[:10]
        assert header[4:8] == bytes(4), "gzip mtime must be 0"
        assert not header[3] & 0x08, "gzip header must not name a file"


def test_writer_error_leaves_no_file(tmp_path: Path) -> None:
    final = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError), RecordWriter(final) as writer:
        writer.write({"id": "1", "text": "a"})
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_format_errors_survive_pickling_between_processes() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(RecordFormatError("a.jsonl", 3, "invalid JSON: x", "invalid_json")))
    assert (str(error), error.path, error.line, error.reason) == (
        "a.jsonl:3: invalid JSON: x",
        "a.jsonl",
        3,
        "invalid_json",
    )


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_count_records_counts_what_reading_yields(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"docs{suffix}"
    with RecordWriter(path, parquet_batch=10) as writer:
        writer.write_many(_documents(25))
    paths = [str(path)]
    if suffix == ".jsonl":
        blank_lines = tmp_path / "blank-lines.jsonl"
        blank_lines.write_bytes(b'{"id": "x", "text": "t"}\n\n  \n{"id": "y", "text": "t"}')  # last line unended
        paths.append(str(blank_lines))
    assert count_records(paths) == sum(1 for path in paths for _ in iter_records(path))


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_count_records_of_a_truncated_file_counts_up_to_the_damage(tmp_path: Path, suffix: str) -> None:
    whole = tmp_path / f"whole{suffix}"
    with RecordWriter(whole) as writer:
        writer.write_many({"id": str(i), "text": f"some text here {i}"} for i in range(20000))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    readable = sum(1 for _ in iter_records(str(cut), on_error="skip"))
    assert 0 < count_records([str(cut)]) <= readable + 1 and count_records([str(whole)]) == 20000
