"""Logging, stage accounting, embedded models and the command line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlfilter import embedded
from mlfilter.embedded import EMBEDDED_ENCODER, EMBEDDED_LLM, resolve_model, smollm2_gguf
from mlfilter.errors import MlfilterError
from mlfilter.logs import setup_logging
from mlfilter.reports import StageCounts


def test_logging_writes_file_from_several_processes_and_masks_secrets(tmp_path: Path) -> None:
    script = (
        "import sys; from mlfilter.logs import setup_logging; "
        "log = setup_logging('t', log_dir=sys.argv[1]); "
        "[log.info('worker %s line %d key=%s', sys.argv[2], i, 'sk-supersecret-123') for i in range(200)]"
    )
    env = {**os.environ, "OPENAI_API_KEY": "sk-supersecret-123"}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(w)], env=env, stderr=subprocess.DEVNULL)
        for w in range(3)
    ]
    assert all(p.wait() == 0 for p in procs)
    lines = (tmp_path / "mlfilter.log").read_text().splitlines()
    assert len(lines) == 600
    assert all("key=***" in line for line in lines)
    assert not any("supersecret" in line for line in lines)


def test_setup_logging_is_idempotent(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        setup_logging("a", log_dir=tmp_path)
        count = len(root.handlers)
        setup_logging("b", log_dir=tmp_path)
        assert len(root.handlers) == count
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()


def test_stage_counts_balance() -> None:
    counts = StageCounts()
    counts.keep(3)
    counts.drop("too_short", 2)
    counts.check_balance()
    assert counts.as_dict() == {"seen": 5, "kept": 3, "dropped": {"too_short": 2}}
    counts.seen += 1
    with pytest.raises(MlfilterError, match="accounting error: 6 documents seen"):
        counts.check_balance()


def test_embedded_models_resolve_to_installed_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        embedded, "hub_reachable", lambda: True
    )  # without the hub: tests/foundation/test_hub_offline.py
    encoder = resolve_model(EMBEDDED_ENCODER)
    assert (Path(encoder.path) / "config.json").is_file()
    assert smollm2_gguf().is_file()
    llm = resolve_model(EMBEDDED_LLM)  # the GGUF converted once into a Hugging Face folder
    assert llm.gguf_file is None and (Path(llm.path) / "config.json").is_file()
    assert resolve_model("FacebookAI/xlm-roberta-base").path == "FacebookAI/xlm-roberta-base"
    with pytest.raises(MlfilterError, match="unknown embedded model"):
        resolve_model("embedded:nope")


def test_cli_help_lists_every_command_and_each_command_has_help() -> None:
    from mlfilter.cli import COMMANDS

    run = subprocess.run([sys.executable, "-m", "mlfilter.cli", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in run.stdout
        usage = subprocess.run([sys.executable, "-m", "mlfilter.cli", name, "--help"], capture_output=True, text=True)
        assert usage.returncode == 0 and f"usage: mlfilter {name}" in usage.stdout, usage.stderr
