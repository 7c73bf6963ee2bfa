"""The sample stage end to end: resolve inputs, process files in parallel, select, write, report."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from mlfilter.errors import MlfilterError
from mlfilter.logs import progress_bar
from mlfilter.records import ShardedWriter, iter_records
from mlfilter.reports import ALL_TASKS, Figure, StageCounts, Stopwatch, write_report
from mlfilter.sampling.langid import CONFIDENCE_BINS, language_identifier
from mlfilter.sampling.params import SampleParams
from mlfilter.sampling.reservoir import KEY_DTYPE, Selection, select
from mlfilter.sampling.sources import input_size, resolve_inputs
from mlfilter.sampling.worker import FileSettings, FileSummary, FileTask, process_file

log = logging.getLogger("mlfilter.sample")


def available_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_sample(
    params: SampleParams, seed: int, output: str | os.PathLike[str], report_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Draw the sample described by ``params`` into ``output`` (sharded JSONL) and write its report.

    Returns the report. Raises :class:`MlfilterError` on a bad input file unless ``on_error`` is
    ``skip``, in which case the file is counted under its reason and the others complete.
    """
    stopwatch = Stopwatch()
    language_identifier(params.language_id).check_supported(params.languages)
    files = resolve_inputs(params.sources, seed, retries=params.retries, backoff_s=params.retry_backoff_s)
    settings = FileSettings.from_params(params, seed)
    work_dir = Path(params.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    tasks = [FileTask(i, f, settings, str(work_dir / settings.fingerprint(f))) for i, f in enumerate(files)]
    workers = params.workers or available_cpus()
    per_worker: dict[str, Any] | None = None
    if params.engine == "ray":
        from mlfilter.sampling.ray_engine import RaySampleEngine

        log.info("sample: %d input files on Ray, extractor %s", len(tasks), params.extractor)
        with RaySampleEngine(params.ray.address, params.ray.cpus_per_task) as engine:
            ray_run = engine.run(tasks, stop_on_error=params.on_error == "raise")
        summaries = [ray_run.summaries[task.index] for task in tasks]
        per_worker = ray_run.workers_report()
    else:
        log.info("sample: %d input files, %d worker(s), extractor %s", len(tasks), workers, params.extractor)
        summaries = run_tasks(tasks, workers, stop_on_error=params.on_error == "raise")
    finished = [(task, summary) for task, summary in zip(tasks, summaries, strict=True) if task.summary_path.exists()]
    selection = select_candidates(finished, params)
    shards = write_sample(Path(output), finished, selection, params)
    report = build_report(params, seed, tasks, summaries, selection, shards, stopwatch)
    if per_worker is not None:
        report["throughput"].update(engine="ray", workers=per_worker)
    write_report(report_path, report)
    if not params.keep_work:
        for task in tasks:
            for path in task.work_files():
                path.unlink(missing_ok=True)
    log.info(
        "sample: %d of %d records kept (%s) in %.1f s",
        report["records"]["kept"],
        report["records"]["seen"],
        ", ".join(f"{lang} {n}" for lang, n in sorted(selection.kept_per_language.items())),
        stopwatch.seconds,
    )
    return report


def run_tasks(tasks: list[FileTask], workers: int, *, stop_on_error: bool) -> list[FileSummary]:
    """Process every task not done by an earlier run, ``workers`` files at a time; summaries in task order.

    With ``stop_on_error``, the first file that fails raises :class:`MlfilterError` naming it.
    """
    summaries: dict[int, FileSummary] = {}
    pending: list[FileTask] = []
    for task in tasks:
        summary = task.load_summary()
        if summary is None:
            pending.append(task)
        else:
            summaries[task.index] = summary
    if summaries:
        log.info("sample: %d of %d files already done by an earlier run", len(summaries), len(tasks))
    pending = [dataclasses.replace(task, size=input_size(task.file.path)) for task in pending]
    sizes = [task.size for task in pending]
    if None in sizes:  # a remote file of unknown size: the bar counts files
        bar = progress_bar(desc="sample: input files", total=len(pending), unit="file")
        on_bytes = None
    else:
        bar = progress_bar(desc="sample: input", total=sum(sizes), unit="B", unit_scale=True)
        on_bytes = bar.update
    with bar, closing(_completed(pending, min(workers, len(pending)), on_bytes)) as completed:
        for task, summary in completed:
            if on_bytes is None:
                bar.update()
            summaries[task.index] = summary
            if summary.error is not None:
                log.warning("%s (%s)", summary.error["message"], summary.error["reason"])
                if stop_on_error:
                    raise MlfilterError(
                        f"{summary.error['message']} — set sample.on_error: skip to count such files and go on"
                    )
    return [summaries[task.index] for task in tasks]


def _completed(
    tasks: list[FileTask], workers: int, on_bytes: Callable[[int], None] | None
) -> Iterator[tuple[FileTask, FileSummary]]:
    """Process ``tasks``, ``workers`` files at a time; ``on_bytes(n)``: ``n`` further input bytes were read."""
    if workers <= 1:
        for task in tasks:
            yield task, process_file(task, on_bytes)
        return
    counter = multiprocessing.get_context("spawn").Value("q", 0)
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(counter,)
    )
    try:
        futures = {pool.submit(_process_in_worker, task): task for task in tasks}
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, timeout=1.0, return_when=FIRST_COMPLETED)
            if on_bytes is not None:
                with counter.get_lock():
                    read, counter.value = counter.value, 0
                on_bytes(read)
            for future in sorted(done, key=lambda f: futures[f].index):
                yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_bytes_counter: Any = None


def _init_worker(counter: Any) -> None:
    global _bytes_counter
    _bytes_counter = counter


def _count_bytes(n: int) -> None:
    with _bytes_counter.get_lock():
        _bytes_counter.value += n


def _process_in_worker(task: FileTask) -> FileSummary:
    return process_file(task, _count_bytes)


def select_candidates(finished: list[tuple[FileTask, FileSummary]], params: SampleParams) -> Selection:
    """Load the keys of every finished file and select the sample among all their candidates."""
    keys = [np.zeros(0, dtype=KEY_DTYPE)]
    files = [np.zeros(0, dtype=np.int64)]
    rows = [np.zeros(0, dtype=np.int64)]
    for task, summary in finished:
        part = task.load_keys()
        if len(part) != summary.candidates:
            raise MlfilterError(f"{task.keys_path}: damaged work file; delete {task.work_prefix}.* and rerun")
        keys.append(part)
        files.append(np.full(len(part), task.index, dtype=np.int64))
        rows.append(np.arange(len(part), dtype=np.int64))
    return select(
        np.concatenate(keys),
        np.concatenate(files),
        np.concatenate(rows),
        targets=params.targets,
        fractions=params.fractions,
        dedup=params.dedup,
    )


def write_sample(
    output: Path, finished: list[tuple[FileTask, FileSummary]], selection: Selection, params: SampleParams
) -> list[str]:
    """Write the selected documents, in input order, as shards of ``output``; the folder is replaced whole
    only once every shard is written. Returns the shard names."""
    _remove_abandoned(output)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    start = 0
    bar = progress_bar(desc="sample: writing", total=int(selection.kept.sum()), unit="doc")
    try:
        with (
            ShardedWriter(
                tmp, suffix=f".jsonl.{params.compression}", records_per_shard=params.records_per_shard
            ) as writer,
            bar,
        ):
            for task, summary in finished:
                kept = selection.kept[start : start + summary.candidates]
                start += summary.candidates
                if kept.any():
                    for row, (_, record) in enumerate(iter_records(str(task.spool_path))):
                        if kept[row]:
                            writer.write(record)
                            bar.update()
        shards = [path.name for path in writer.shards]
        replace_folder(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return shards


def _remove_abandoned(output: Path) -> None:
    """Remove half-written output folders left by runs that were killed (their process is gone)."""
    for stale in output.parent.glob(f".{output.name}.*-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    return True


def replace_folder(new: Path, target: Path) -> None:
    """Move the finished folder ``new`` to ``target``, replacing a previous one whole."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def build_report(
    params: SampleParams,
    seed: int,
    tasks: list[FileTask],
    summaries: list[FileSummary],
    selection: Selection,
    shards: list[str],
    stopwatch: Stopwatch,
) -> dict[str, Any]:
    """The metrics JSON: every record read is kept or dropped under a reason (checked), per-language
    counts, files and their errors, throughput."""
    dropped: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for summary in summaries:
        dropped.update(summary.dropped)
        seen.update(summary.identified)
    dropped.update(selection.dropped)
    counts = StageCounts(seen=sum(s.records for s in summaries), kept=int(selection.kept.sum()), dropped=+dropped)
    counts.check_balance()
    processed = [s for s in summaries if not s.reused]
    failed = Counter(s.error["reason"] for s in summaries if s.error)
    seconds = stopwatch.seconds
    return {
        "records": counts.as_dict(),
        "documents_extracted": sum(s.extracted for s in summaries),
        "documents_kept": counts.kept,
        "languages": _language_report(params, seen, selection),
        "language_confidence": _confidence_report(params, summaries),
        "files": {
            "total": len(tasks),
            "processed": len(processed),
            "reused": len(summaries) - len(processed),
            "failed": dict(sorted(failed.items())),
            "errors": [{"path": s.path, **s.error} for s in summaries if s.error],
        },
        "output": {"shards": shards, "documents": counts.kept},
        "throughput": {
            "seconds": round(seconds, 3),
            "records_per_second": round(sum(s.records for s in processed) / max(seconds, 1e-9), 3),
            "documents_per_second": round(sum(s.extracted for s in processed) / max(seconds, 1e-9), 3),
        },
        "extractor": params.extractor,
        "seed": seed,
        "inputs": [task.file.path for task in tasks],
    }


def headline(report: dict[str, Any]) -> dict[str, dict[str, Figure]]:
    """The sample's headline figures (:func:`mlfilter.reports.write_headline`) from its report: records read,
    documents extracted and documents kept."""
    return {
        "records_read": {ALL_TASKS: report["records"]["seen"]},
        "documents_extracted": {ALL_TASKS: report["documents_extracted"]},
        "documents_kept": {ALL_TASKS: report["documents_kept"]},
    }


def _confidence_report(params: SampleParams, summaries: list[FileSummary]) -> dict[str, Any]:
    """Per identified language, how many documents the identifier placed in each confidence bin."""
    totals: dict[str, np.ndarray] = {}
    for summary in summaries:
        for language, counts in summary.confidence.items():
            totals.setdefault(language, np.zeros(CONFIDENCE_BINS, dtype=np.int64))
            totals[language] += np.asarray(counts, dtype=np.int64)
    return {
        "backend": params.language_id,
        "bins": [round(i / CONFIDENCE_BINS, 1) for i in range(CONFIDENCE_BINS + 1)],
        "documents": {language: [int(n) for n in counts] for language, counts in sorted(totals.items())},
    }


def _language_report(params: SampleParams, seen: Counter[str], selection: Selection) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for language in sorted({*seen, *params.languages}):
        entry: dict[str, Any] = {"seen": seen.get(language, 0)}
        if language in params.languages:
            kept = selection.kept_per_language.get(language, 0)
            entry.update(eligible=selection.eligible.get(language, 0), kept=kept)
            if language in params.targets:
                entry.update(target=params.targets[language], shortfall=params.targets[language] - kept)
            else:
                entry.update(fraction=params.fractions[language])
        report[language] = entry
    return report
