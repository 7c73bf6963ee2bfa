"""A real third-party OpenAI-compatible server for the annotate tests: vLLM for CPU serving the packaged SmolLM2.

The server runs from its own venv (``make install-vllm`` builds ``.venv-vllm``; ``MLFILTER_VLLM_VENV``
points elsewhere) and serves the packaged GGUF converted once to a Hugging Face folder
(``scripts/export_embedded_llm.py``). It starts once per test session on 127.0.0.1 on a free port, in a
process group of its own, and the whole group (the API server and its ``EngineCore`` child) is killed at
the end. Without the venv the tests are skipped with the reason, unless ``MLFILTER_REALSERVER=require``
(as ``make test`` sets), which turns the skip into a failure. ``MLFILTER_VLLM_URL`` (``http://host:port/v1``)
points the tests at a vLLM server already running and serving ``SmolLM2-135M-Instruct``, to iterate
without the start-up wait; the fixture then neither starts nor stops one.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("MLFILTER_VLLM_VENV", ROOT / ".venv-vllm"))
MODEL_NAME = "SmolLM2-135M-Instruct"
#: Start-up takes 2–5 minutes on 2 busy cores (model load, CPU kernels, warm-up); this leaves room.
START_TIMEOUT_S = 600.0
_SAMPLE = re.compile(r"^(vllm:[a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$", re.MULTILINE)


@dataclass(frozen=True)
class RealServer:
    """A running vLLM server: ``url`` is the OpenAI base URL (``http://127.0.0.1:<port>/v1``)."""

    url: str
    model: str

    def metric(self, name: str) -> float:
        """The sum over all label sets of the server's Prometheus metric ``name`` (``vllm:request_success_total``)."""
        root = self.url.removesuffix("/v1")
        with urllib.request.urlopen(f"{root}/metrics", timeout=10) as response:
            text = response.read().decode()
        values = [float(value) for metric, value in _SAMPLE.findall(text) if metric == name]
        assert values, f"the server's /metrics has no {name}"
        return sum(values)

    def finished_requests(self) -> int:
        """Requests the server has finished (any reason), from its own ``/metrics``."""
        return round(self.metric("vllm:request_success_total"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever is left of it after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def model_folder() -> Path:
    """The packaged SmolLM2 as a Hugging Face folder (converted on first use, then cached by the GGUF's hash)."""
    script, cache = ROOT / "scripts" / "export_embedded_llm.py", ROOT / ".mlfilter" / "models"
    result = subprocess.run(
        [sys.executable, str(script), "--cache", str(cache)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"converting the embedded LLM failed:\n{result.stderr[-3000:]}"
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def vllm_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """vLLM's OpenAI API server on 127.0.0.1, started once per session (its log goes to a temporary folder)."""
    running = os.environ.get("MLFILTER_VLLM_URL")
    if running:
        assert _ready(running), f"MLFILTER_VLLM_URL={running}: no answer from its /models"
        yield RealServer(running, MODEL_NAME)
        return
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").is_file():
        reason = f"the vLLM server venv {VENV} is not built: run `make install-vllm`"
        if os.environ.get("MLFILTER_REALSERVER") == "require":
            pytest.fail(reason)
        pytest.skip(reason)
    model_folder: Path = request.getfixturevalue("model_folder")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_LOGGING_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTHONPATH", None)
    command = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_folder),
        "--served-model-name",
        MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "2048",
        "--dtype",
        "bfloat16",
        # No torch.compile: compiling the C++ kernels took 10 minutes of a 2-core start-up; eager serves the
        # tests' few hundred short requests at about the same speed.
        "--enforce-eager",
    ]
    url = f"http://127.0.0.1:{port}/v1"
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        while not _ready(url):
            if process.poll() is not None:
                pytest.fail(f"the vLLM server exited with {process.returncode} while starting:\n{_tail(log)}")
            if time.monotonic() - started > START_TIMEOUT_S:
                pytest.fail(f"no answer from {url}/models within {START_TIMEOUT_S:.0f} s:\n{_tail(log)}")
            time.sleep(2)
        start_s = time.monotonic() - started
        print(f"\nvLLM server up at {url} after {start_s:.0f} s (log: {log})")
        yield RealServer(url, MODEL_NAME)
    finally:
        _stop(process)
