"""The annotate stages in a real git + DVC repository: one stage per annotator, reruns only what changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.annotation.conftest import DOCUMENTS, ROOT
from tests.openai_server import FakeOpenAIServer

SECRET = "sk-dvc-test-0123456789"
DOWNSTREAM = {
    "cmd": "python -c \"import pathlib; pathlib.Path('summary.txt').write_text("
    "' '.join(sorted(p.name for p in pathlib.Path('data/annotations').iterdir() if p.is_dir())))\"",
    "deps": ["data/annotations"],
    "outs": ["summary.txt"],
}


def annotator(model: str) -> dict:
    return {"backend": "openai", "model": model, "max_document_tokens": 100, "backoff_initial_s": 0.01}


def dvc(repo: Path, server: FakeOpenAIServer, *args: str) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OPENAI_BASE_URL": server.url,
        "OPENAI_API_KEY": SECRET,
        "DVC_NO_ANALYTICS": "1",
        "MLFILTER_PROGRESS": "0",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def stale(repo: Path, server: FakeOpenAIServer) -> set[str]:
    """Stages `dvc status` reports, without the `inputs` stage (it runs on every repro, by design)."""
    return set(json.loads(dvc(repo, server, "status", "--json"))) - {"inputs"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A project with the real annotate stage of dvc.yaml, two annotators and a stage after them."""
    repo = tmp_path / "project"
    for folder in ("src", "stages"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "prompts").mkdir()
    shutil.copy(ROOT / "prompts" / "educational_v1.yaml", repo / "prompts")
    (repo / "data" / "sample").mkdir(parents=True)
    lines = DOCUMENTS.read_text(encoding="utf-8").splitlines()[:8]
    (repo / "data" / "sample" / "part-00000.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    params = {
        "tasks": [{"name": "educational", "prompt": "prompts/educational_v1.yaml", "num_targets": 6, "threshold": 3}],
        "sample": {"sources": [{"type": "documents", "paths": ["data/sample"]}], "targets": {"en": 8}},
        "annotate": {
            "cache": ".mlfilter/cache/requests.sqlite",
            "annotators": {"alpha": annotator("model-a"), "beta": annotator("model-b")},
        },
    }
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    pipeline = {"stages": {"inputs": stages["inputs"], "annotate": stages["annotate"], "downstream": DOWNSTREAM}}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    (repo / ".gitignore").write_text(".mlfilter/\nlogs/\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=repo, check=True)
    return repo


@pytest.mark.slow
def test_a_new_prompt_for_one_annotator_reruns_only_it_and_what_follows(repo: Path) -> None:
    with FakeOpenAIServer() as server:
        dvc(repo, server, "repro")
        assert server.request_count == 16
        assert (repo / "summary.txt").read_text() == "alpha beta"
        assert stale(repo, server) == set()
        lock = (repo / "dvc.lock").read_text()
        assert SECRET not in lock and server.url not in lock and str(server.port) not in lock

        v1 = (repo / "prompts" / "educational_v1.yaml").read_text(encoding="utf-8")
        v2 = v1.replace("experienced teacher", "demanding teacher")
        (repo / "prompts" / "educational_v2.yaml").write_text(v2, encoding="utf-8")
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["annotate"]["annotators"]["alpha"]["prompts"] = {"educational": "prompts/educational_v2.yaml"}
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

        assert stale(repo, server) == {"annotate@alpha"}
        server.reset_counts()
        output = dvc(repo, server, "repro")
        assert "Running stage 'annotate@alpha'" in output
        assert "Running stage 'downstream'" in output
        assert "Running stage 'annotate@beta'" not in output
        assert server.request_count == 8, "only alpha asks, and only about its new prompt"
        record = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys, zstandard; sys.stdout.write(zstandard.ZstdDecompressor()"
                    ".stream_reader(open(sys.argv[1], 'rb')).read().decode().splitlines()[0])",
                    str(repo / "data" / "annotations" / "alpha" / "part-00000.jsonl.zst"),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert record["prompt"]["educational"]["name"] == "educational_v2"
        assert stale(repo, server) == set()
        metrics = (repo / "reports" / "annotate" / "alpha.json").read_text()
        assert SECRET not in metrics and server.url not in metrics


@pytest.mark.slow
def test_a_temp_experiment_shares_the_request_cache(repo: Path) -> None:
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    with FakeOpenAIServer() as server:
        dvc(repo, server, "repro")
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True, capture_output=True)
        subprocess.run([*git, "commit", "-qm", "baseline"], cwd=repo, check=True, capture_output=True)
        server.reset_counts()
        output = dvc(repo, server, "exp", "run", "--temp", "-S", "annotate.annotators.beta.backoff_initial_s=0.02")
        assert "Running stage 'annotate@beta'" in output
        assert server.request_count == 0, "the experiment's copy of the project reads the project's cache"
