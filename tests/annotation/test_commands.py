"""``mlfilter score_documents`` and ``mlfilter annotate`` from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from mlfilter import cli
from mlfilter.annotation.cache import RequestCache
from tests.annotation.conftest import DOCUMENTS, EDUCATIONAL, read_output
from tests.openai_server import FakeOpenAIServer
from tests.shell import interruptible


def config(tmp_path: Path, **extra) -> Path:
    values = {
        "input": [str(DOCUMENTS)],
        "output": str(tmp_path / "out"),
        "name": "llm",
        "cache": str(tmp_path / "cache.sqlite"),
        "tasks": [{"name": "educational", "prompt": EDUCATIONAL.prompt, "num_targets": 6, "threshold": 3}],
        "annotator": {"backend": "openai", "model": "fake", "n": 2, "sampling": {"seed": 1}, "backoff_initial_s": 0.01},
    }
    values.update(extra)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_score_documents(server: FakeOpenAIServer, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    cfg = config(tmp_path)
    assert cli.main(["score_documents", "--config_file_path", str(cfg), "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["to_send"] == 144 and server.request_count == 0
    assert cli.main(["score_documents", "--config_file_path", str(cfg)]) == 0
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["annotator"] == "llm" and report["requests"]["sent"] == 144
    records = read_output(tmp_path / "out")
    assert len(records) == 72 and all(len(r["scores"]["educational"]) == 2 for r in records)


def test_score_documents_config_errors_name_the_key(tmp_path: Path, capsys) -> None:
    cfg = config(tmp_path, annotator={"backend": "openai", "model": "fake", "temprature": 0.5})
    assert cli.main(["score_documents", "--config_file_path", str(cfg)]) == 2
    assert "cfg.yaml: annotator.temprature: unknown key" in capsys.readouterr().err


def test_score_documents_help_documents_the_config(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["score_documents", "--help"])
    text = capsys.readouterr().out
    for key in ("input:", "output:", "tasks:", "annotator:", "base_url_env", "api_key_env"):
        assert key in text


def test_annotate_dry_run_of_the_demo_params(tmp_path: Path, monkeypatch, capsys) -> None:
    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("MLFILTER_CACHE", str(tmp_path / "cache.sqlite"))
    args = ["annotate", "--annotator", "smollm2_logprobs", "--params", str(root / "params.yaml"), "--dry-run"]
    assert cli.main([*args, "--input", str(DOCUMENTS)]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["requests"] == 72 and dry["to_send"] == 72
    assert dry["prompt_tokens_method"] == "tokenizer" and dry["prompt_tokens_to_send"] > 72 * 300
    assert dry["estimated_output_tokens"] == 72


def test_ctrl_c_prints_one_line_saying_what_was_saved_and_how_to_resume(tmp_path: Path) -> None:
    cfg = config(tmp_path, annotator={"backend": "openai", "model": "fake", "concurrency": 2})
    with FakeOpenAIServer(latency=0.2) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "MLFILTER_PROGRESS": "0"}
        command = interruptible("-m", "mlfilter.cli", "score_documents", "--config_file_path", str(cfg))
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while server.request_count < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("mlfilter score_documents: error: annotator 'llm': interrupted; ")
    assert "saved in the request cache" in last and "Run the same command again to resume" in last
    saved = int(last.split("interrupted; ")[1].split(" ")[0])
    assert saved >= 4 and saved == len(RequestCache(tmp_path / "cache.sqlite"))
