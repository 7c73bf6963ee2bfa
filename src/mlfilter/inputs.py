"""The pipeline's inputs that params.yaml names and DVC cannot list, made visible to DVC.

A stage's ``deps`` in ``dvc.yaml`` are fixed paths: a list of files in ``params.yaml`` (the user's
``sample.sources``, an annotator's prompt files and ``import_paths``) cannot be interpolated into them.
The ``inputs`` stage, which DVC runs on every ``dvc repro`` (it only hashes), records the SHA-256 of
each such local file in one small JSON file per consuming stage under ``data/inputs/``:

- ``sample.json``: the local files of ``sample.sources`` (``warc`` and ``documents`` sources);
- ``annotate/<name>.json``: the prompt files of annotator ``<name>`` and, for the ``import`` backend,
  its annotation files.

Each consuming stage lists its file as a dep, so editing a source, a prompt file (in place) or an
imported file reruns exactly that stage and what follows, and nothing else. Remote inputs
(``s3://``, ``http(s)://``, Common Crawl) are recorded by URL only: they are named, not hashed.
Hashes are memoised by path, size and modification time in an untracked file, so an unchanged large
corpus is read once.

DVC keeps the ``dvc.lock`` entry of a stage that left ``dvc.yaml`` (treeverse/dvc#5293), so an
annotator removed from ``params.yaml`` would stay in the lock; :func:`prune_lock` drops the entries of
``annotate@<name>`` stages whose annotator is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlfilter.annotation.params import AnnotatorParams
from mlfilter.atomic import atomic_open, write_json
from mlfilter.errors import MlfilterError
from mlfilter.params import DEFAULT_PARAMS_FILE, TaskParams, load_section, load_tasks
from mlfilter.records import expand_inputs, is_remote
from mlfilter.sampling.params import SampleParams
from mlfilter.sampling.sources import expand_warc_paths

#: Untracked memo of file hashes: absolute path → [size, mtime_ns, sha256].
HASH_MEMO = Path(".mlfilter/inputs-hashes.json")
REMOTE = "remote: named, not hashed"
#: The stages generated per annotator (``foreach`` over ``annotate.annotators`` in dvc.yaml).
ANNOTATE_STAGE = "annotate@"


class FileHasher:
    """SHA-256 of local files, memoised by (absolute path, size, mtime) in ``memo_path``."""

    def __init__(self, memo_path: Path = HASH_MEMO) -> None:
        self.memo_path = memo_path
        try:
            self.memo: dict[str, list[Any]] = json.loads(memo_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.memo = {}

    def digest(self, path: str) -> str:
        """The hex SHA-256 of the file at ``path``; raises :class:`MlfilterError` when it is missing."""
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise MlfilterError(f"{path}: input file not found") from None
        key = os.path.abspath(path)
        cached = self.memo.get(key)
        if cached and cached[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(cached[2])
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        self.memo[key] = [stat.st_size, stat.st_mtime_ns, digest]
        return digest

    def digests(self, paths: Iterable[str]) -> dict[str, str]:
        """``path → sha256`` for local paths, ``path → REMOTE`` for URLs, sorted by path."""
        return {p: REMOTE if is_remote(p) else self.digest(p) for p in sorted(set(paths))}

    def save(self) -> None:
        """Write the memo (atomically) for the next run."""
        write_json(self.memo_path, self.memo)


def _local_then_expand(patterns: Sequence[str], expand: Any) -> list[str]:
    """Remote patterns as they are (never listed here), local ones expanded to files."""
    remote = [p for p in patterns if is_remote(p)]
    local = [p for p in patterns if not is_remote(p)]
    try:
        return remote + (expand(local) if local else [])
    except FileNotFoundError as exc:
        raise MlfilterError(str(exc)) from None


def sample_files(params: SampleParams) -> list[str]:
    """The files (local) or URLs (remote) that ``sample.sources`` names; Common Crawl sources add none."""
    files: list[str] = []
    for source in params.sources:
        if source.type == "warc":
            files += _local_then_expand(source.paths, expand_warc_paths)
        elif source.type == "documents":
            files += _local_then_expand(source.paths, expand_inputs)
    return files


def annotator_files(params: AnnotatorParams, tasks: Sequence[TaskParams]) -> dict[str, list[str]]:
    """The prompt files and imported annotation files annotator ``params`` reads."""
    files = {"prompts": sorted(params.prompt_files(tasks).values())}
    if params.backend == "import":
        files["import_paths"] = _local_then_expand(params.import_paths, expand_inputs)
    return files


def write_inputs(output: str | os.PathLike[str], params_path: str = DEFAULT_PARAMS_FILE) -> dict[str, int]:
    """Write ``<output>/sample.json`` and ``<output>/annotate/<name>.json``; remove files of removed annotators.

    Returns the number of files hashed per consumer. Raises :class:`MlfilterError` when a named local
    file or pattern matches nothing.
    """
    out = Path(output)
    hasher = FileHasher()
    counts: dict[str, int] = {}
    sample = hasher.digests(sample_files(load_section("sample", params_path)))
    write_json(out / "sample.json", {"sources": sample})
    counts["sample"] = len(sample)
    tasks = load_tasks(params_path)
    annotators = load_section("annotate", params_path).annotators
    for name, annotator in annotators.items():
        entry = {kind: hasher.digests(paths) for kind, paths in annotator_files(annotator, tasks).items()}
        write_json(out / "annotate" / f"{name}.json", entry)
        counts[f"annotate@{name}"] = sum(len(v) for v in entry.values())
    for stale in sorted((out / "annotate").glob("*.json")):
        if stale.stem not in annotators:
            stale.unlink()
    hasher.save()
    return counts


def prune_lock(lock_path: str | os.PathLike[str], annotators: Iterable[str]) -> list[str]:
    """Drop the ``dvc.lock`` entries of ``annotate@<name>`` stages whose annotator is not in ``annotators``.

    Returns the stage names dropped; a missing lock file is left alone.
    """
    path = Path(lock_path)
    if not path.is_file():
        return []
    lock = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    stages = lock.get("stages") or {}
    keep = {f"{ANNOTATE_STAGE}{name}" for name in annotators}
    dropped = [name for name in stages if name.startswith(ANNOTATE_STAGE) and name not in keep]
    if dropped:
        lock["stages"] = {name: entry for name, entry in stages.items() if name not in dropped}
        with atomic_open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(lock, handle, sort_keys=False, allow_unicode=True)
    return dropped
