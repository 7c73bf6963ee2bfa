"""Benchmark: the annotate stage's OpenAI client against a server with fixed latency, and a baseline.

A fake OpenAI-compatible server (tests/openai_server.py) runs in its own process and answers every
request after ``--latency`` seconds, with no limit of its own, so the client's CPU time is measured
alone (``time.process_time()`` of this process, all threads). Three runs, side by side:

- **ours, client**: :class:`OpenAIClient` with ``--concurrency`` requests in flight;
- **ours, whole stage**: the full annotate run (read documents, render and hash prompts, look up the
  request cache, send, commit results to SQLite, rebuild and write the output, with the validity checks
  on: every reply judged into a status, the failure budget checked) at the same concurrency;
- **baseline**: the original tool's design — blocking ``requests`` calls from a thread pool of
  ``--baseline-workers`` (its usual worker count) sharing one session.

Targets: at concurrency 256 and latency 0.2 s, at least 0.9 × 256 / 0.2 = 1152 requests/s and at
most 1 ms of client CPU per request. Documents: the FineWeb-Edu sample of ../shared/data when
present, else synthetic text. Run: ``python benchmarks/bench_annotate_client.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from mlfilter.annotation.backends.openai_client import OpenAIBackend, OpenAIClient  # noqa: E402
from mlfilter.annotation.params import AnnotatorParams, SamplingParams  # noqa: E402
from mlfilter.annotation.runner import AnnotationRun, Annotator, check_budget  # noqa: E402
from mlfilter.params import TaskParams  # noqa: E402

SHARED_DOCS = ROOT.parent / "shared" / "data" / "fineweb-edu-llama3-annotations-1000.jsonl"
TASK = TaskParams("educational", str(ROOT / "prompts" / "educational_v1.yaml"), 6, 3)


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    """The fake server in its own process; returns it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        raise RuntimeError("the fake server did not start")
    return process, url


def write_documents(path: Path, count: int) -> None:
    """``count`` real documents (the FineWeb-Edu sample, reused with new ids) or synthetic ones."""
    texts = []
    if SHARED_DOCS.exists():
        texts = [json.loads(line)["text"][:3000] for line in SHARED_DOCS.open(encoding="utf-8")]
    if not texts:
        texts = [f"Document {i}: " + "Plants turn light into sugar. " * 60 for i in range(1000)]
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            text = (f"(copy {i // len(texts)})\n" if i >= len(texts) else "") + texts[i % len(texts)]
            handle.write(json.dumps({"id": str(i), "text": text, "language": "en"}) + "\n")


def params(concurrency: int, n: int = 1) -> AnnotatorParams:
    return AnnotatorParams(
        backend="openai",
        model="bench",
        n=n,
        sampling=SamplingParams(seed=1, max_new_tokens=64),
        concurrency=concurrency,
        max_document_tokens=512,
        timeout_s=60,
    )


def payloads(count: int) -> tuple[OpenAIBackend, list[bytes]]:
    """Distinct chat bodies of realistic size (prompt + ~2 KB document)."""
    backend = OpenAIBackend(params(1))
    annotator_prompt = Annotator("bench", params(1), (TASK,)).setups[0].prompt.variant_for("en")
    filler = "Plants turn light into sugar and oxygen. " * 50
    return backend, [backend.prepare(annotator_prompt.messages(f"{i} {filler}"), None, 0).payload for i in range(count)]


def measure(run) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Wall seconds and CPU seconds of this process spent in ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def ours_client(url: str, bodies: list[bytes], backend: OpenAIBackend, concurrency: int) -> None:
    async def main() -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        for _ in range(concurrency):
            queue.put_nowait(None)
        async with OpenAIClient([url], None, concurrency=concurrency, timeout_s=60) as client:

            async def worker() -> None:
                while (body := await queue.get()) is not None:
                    await client.post(backend.path, body, backend.read)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())


def baseline(url: str, bodies: list[bytes], workers: int) -> None:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=workers, pool_maxsize=workers)
    session.mount("http://", adapter)

    def post(body: bytes) -> dict:
        response = session.post(
            url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}, timeout=60
        )
        response.raise_for_status()
        return response.json()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(post, bodies):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--requests", type=int, default=6144, help="requests for each of our runs")
    parser.add_argument("--baseline-workers", type=int, default=10, help="the original tool's num_processes")
    parser.add_argument("--baseline-requests", type=int, default=400)
    args = parser.parse_args()
    os.environ["MLFILTER_PROGRESS"] = "0"
    server, url = start_server(args.latency)
    rows = []
    try:
        backend, bodies = payloads(args.requests)
        wall, cpu = measure(lambda: ours_client(url, bodies, backend, args.concurrency))
        rows.append(("ours: client", args.concurrency, args.requests, wall, cpu))

        with tempfile.TemporaryDirectory() as tmp:
            docs = Path(tmp) / "docs.jsonl"
            n = 4
            write_documents(docs, args.requests // n)
            annotator = Annotator("bench", params(args.concurrency, n=n), (TASK,))
            run = AnnotationRun(annotator, [str(docs)], Path(tmp) / "cache.sqlite", env={"OPENAI_BASE_URL": url})
            report: dict = {}
            wall, cpu = measure(lambda: report.update(run.run(Path(tmp) / "out")))
            assert report["requests"]["sent"] == report["requests"]["succeeded"] == args.requests, report["requests"]
            check_budget(run, run.params.max_invalid_fraction)
            rows.append(("ours: whole annotate stage", args.concurrency, report["requests"]["sent"], wall, cpu))
            validity = report["generations"]

        wall, cpu = measure(lambda: baseline(url, bodies[: args.baseline_requests], args.baseline_workers))
        rows.append(("baseline: requests + thread pool", args.baseline_workers, args.baseline_requests, wall, cpu))
    finally:
        server.terminate()
        server.wait()

    target = 0.9 * args.concurrency / args.latency
    print(f"fake OpenAI server in its own process, latency {args.latency} s, no server-side limit")
    print(f"{'client':34} {'in flight':>9} {'requests':>8} {'wall s':>7} {'req/s':>8} {'CPU ms/req':>10}")
    rates = {}
    for name, inflight, count, wall, cpu in rows:
        rates[name] = count / wall
        print(f"{name:34} {inflight:9d} {count:8d} {wall:7.2f} {count / wall:8.1f} {1000 * cpu / count:10.3f}")
    print(f"validity checks: {validity['ok']} of {validity['total']} generations ok, statuses {validity['status']}")
    base = rates["baseline: requests + thread pool"]
    for name in ("ours: client", "ours: whole annotate stage"):
        rate = rates[name]
        cpu_ms = next(1000 * r[4] / r[2] for r in rows if r[0] == name)
        verdict = "PASS" if rate >= target and cpu_ms <= 1.0 else "FAIL"
        print(
            f"{name}: {rate / base:.1f}x the baseline's requests/s; the client's target (>= {target:.0f} req/s, "
            f"<= 1 ms CPU/req): {verdict}"
        )


if __name__ == "__main__":
    main()
