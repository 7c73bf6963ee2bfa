"""The command line answers at once, says its version, and ends every command on Ctrl-C with one line."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlfilter import __version__
from mlfilter.cli import COMMANDS, main
from mlfilter.errors import MlfilterError
from mlfilter.stage import DEFAULT_RESUME, INTERRUPTED_EXIT, RESUME, guarded
from tests.shell import interruptible

REPO_ROOT = Path(__file__).resolve().parents[2]
#: CPU seconds a fresh interpreter may spend importing the CLI and building one command's parser.
HELP_BOUND_S = 1.0
#: Modules that make a help text slow; no parser may import them.
HEAVY = ("torch", "transformers", "numpy", "pandas", "sklearn", "scipy", "matplotlib", "dvclive", "pyarrow")
PROBE = """
import sys, time
start = time.process_time()
from mlfilter.cli import build_parser
parser = build_parser(sys.argv[1])
elapsed = time.process_time() - start
print(elapsed, ",".join(m for m in sys.argv[2:] if m in sys.modules))
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "MLFILTER_PROGRESS": "0",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # never reached: the commands are stopped while reading
    }


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_is_fast_and_imports_nothing_heavy(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, command, *HEAVY], capture_output=True, text=True, env=_env(), check=True
    )
    seconds, heavy = result.stdout.split()[0], result.stdout.split()[1:]
    assert not heavy, f"`mlfilter {command} --help` imports {heavy}"
    assert float(seconds) < HELP_BOUND_S, f"`mlfilter {command} --help` took {seconds} CPU seconds"


def test_help_prints_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    assert "--train TRAIN" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["filter", "--help"])
    assert "--threshold" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mlfilter {__version__}"


def _drop_mlfilter_handlers() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_mlfilter", False)]:
        root.removeHandler(handler)
        handler.close()


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    """No mlfilter log handlers before the test (so it sets them up) nor after (they hold its stderr)."""
    _drop_mlfilter_handlers()
    yield
    _drop_mlfilter_handlers()


@pytest.mark.usefixtures("fresh_logging")
def test_guarded_turns_errors_and_interrupts_into_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    def interrupted() -> int:
        logging.getLogger("mlfilter.filter").warning("working with key %s", "sk-secret-123456")
        raise KeyboardInterrupt

    monkeypatch.setenv("TEST_API_KEY", "sk-secret-123456")
    assert guarded("mlfilter filter", "filter", interrupted) == INTERRUPTED_EXIT
    err = capsys.readouterr().err
    assert err.endswith(f"mlfilter filter: interrupted; {RESUME['filter']}\n")
    assert "sk-secret" not in err and "working with key ***" in err, "logging and masking are set up"
    assert guarded("mlfilter params", "params", lambda: (_ for _ in ()).throw(MlfilterError("bad key"))) == 2
    assert capsys.readouterr().err == "mlfilter params: error: bad key\n"


def _wait_for_reader(fifo: Path, process: subprocess.Popen) -> int:
    """Open the FIFO's write end once the process has opened it for reading; returns the descriptor."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never opened its input"
        time.sleep(0.05)


#: Per command: arguments that make it read a file first (the FIFO stands for a slow input).
BLOCKING_ARGS: dict[str, list[str]] = {
    "params": ["--params", "{fifo}"],
    "sample": ["--params", "{fifo}"],
    "annotate": ["--annotator", "a", "--params", "{fifo}"],
    "score_documents": ["--config_file_path", "{fifo}"],
    "aggregate": ["--params", "{fifo}"],
    "split": ["--params", "{fifo}"],
    "train": ["--params", "{fifo}"],
    "train_classifier": ["--config_file_path", "{fifo}"],
    "annotator_training_pipeline": ["--config_file_path", "{fifo}"],
    "evaluate": ["--params", "{fifo}"],
    "interrater_reliability": ["a.jsonl", "--params", "{fifo}", "--output_file_path", "o.json"],
    "plot_scores": ["a.jsonl", "--params", "{fifo}", "--output_dir", "out"],
    "filter": ["--params", "{fifo}", "--output", "out"],
    "proxy_sample": ["--pool", "a.jsonl", "--output", "out", "--size", "1", "--train", "a.jsonl", "--params", "{fifo}"],
    "translate-prompt": ["{fifo}", "--languages", "ga", "--output", "out.yaml", "--model", "m"],
}


def _interrupt(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``command`` reading from a FIFO named ``input.fifo`` in ``cwd``, press Ctrl-C while it reads."""
    fifo = cwd / "input.fifo"
    os.mkfifo(fifo)
    process = subprocess.Popen(command, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = _wait_for_reader(fifo, process)
    try:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        os.close(writer)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_every_command_has_blocking_arguments() -> None:
    assert set(BLOCKING_ARGS) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_ctrl_c_ends_every_command_with_one_line(tmp_path: Path, command: str) -> None:
    (tmp_path / "a.jsonl").write_text("")
    args = [a.format(fifo="input.fifo") for a in BLOCKING_ARGS[command]]
    result = _interrupt(interruptible("-m", "mlfilter.cli", command, *args), tmp_path)
    assert result.returncode == INTERRUPTED_EXIT, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"mlfilter {command}: interrupted; {RESUME.get(command, DEFAULT_RESUME)}"], result.stderr


def test_ctrl_c_ends_a_stage_script_with_one_line(tmp_path: Path) -> None:
    result = _interrupt(interruptible(str(REPO_ROOT / "stages" / "split.py"), "--params", "input.fifo"), tmp_path)
    assert result.returncode == INTERRUPTED_EXIT
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"stage split: interrupted; {DEFAULT_RESUME}"
    ]
