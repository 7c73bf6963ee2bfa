"""A hub model name without a reachable hub fails in seconds, naming the local-folder alternative.

``HF_HUB_OFFLINE`` (and ``TRANSFORMERS_OFFLINE``) is unset and ``HF_ENDPOINT`` points at a local port that
refuses connections, or at one that accepts them and never answers (a dead proxy, a black-holed network: the
case that used to cost minutes of retries). The loaders run in a fresh interpreter, as huggingface_hub reads
its settings at import.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlfilter import embedded

#: Loads a base encoder as the train stage does and a tokenizer as an annotator does; prints what each raised.
LOADERS = """
import json, sys, time
from mlfilter.annotation.truncation import load_tokenizer
from mlfilter.errors import MlfilterError
from mlfilter.params import TaskParams
from mlfilter.training.params import TrainingParams
from mlfilter.training.run import load_base

results = []
for load in (
    lambda: load_base(TrainingParams(base_model="bert-base-uncased"), [TaskParams("educational", "p.yaml", 6, 3)]),
    lambda: load_tokenizer("meta-llama/Llama-3.3-70B-Instruct"),
):
    started = time.perf_counter()
    try:
        load()
        results.append({"error": None})
    except MlfilterError as exc:
        results.append({"error": str(exc), "seconds": time.perf_counter() - started})
print(json.dumps(results))
"""


@pytest.fixture
def refusing_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def run_loaders(port: int, hf_home: Path) -> list[dict]:
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(hf_home), NO_PROXY="127.0.0.1")
    result = subprocess.run(
        [sys.executable, "-c", LOADERS], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("server", ["refusing_port", "silent_port"])
def test_hub_names_fail_fast_naming_the_local_folder(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    port = request.getfixturevalue(server)
    encoder, tokenizer = run_loaders(port, tmp_path / "hf-home")
    for name, outcome in (("bert-base-uncased", encoder), ("meta-llama/Llama-3.3-70B-Instruct", tokenizer)):
        assert outcome["error"] is not None, f"{name} loaded without a hub"
        assert f"model {name!r}" in outcome["error"]
        assert f"http://127.0.0.1:{port} does not answer" in outcome["error"]
        assert f"hf download {name} --local-dir <folder>" in outcome["error"]
        assert f"give that folder instead of {name!r}" in outcome["error"]
        # The first load waits for the probe (at most HUB_PROBE_TIMEOUT_S); the second knows the answer.
        assert outcome["seconds"] < embedded.HUB_PROBE_TIMEOUT_S + 2.0, outcome
    assert tokenizer["seconds"] < 1.0


def _cache_model(cache: Path, repo_id: str) -> None:
    """A Hugging Face cache entry for ``repo_id`` holding a config.json, as huggingface_hub lays it out."""
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)


def test_without_the_hub_a_cached_model_is_read_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    _cache_model(tmp_path, "org/cached-encoder")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    embedded.hub_reachable.cache_clear()
    try:
        location = embedded.resolve_model("org/cached-encoder")
        assert location.from_pretrained_kwargs() == {"local_files_only": True}
        with pytest.raises(embedded.MlfilterError, match="offline mode is set"):
            embedded.resolve_model("org/not-cached")
        folder = tmp_path / "my-encoder"
        folder.mkdir()
        assert embedded.resolve_model(str(folder)).from_pretrained_kwargs() == {}
    finally:
        embedded.hub_reachable.cache_clear()
