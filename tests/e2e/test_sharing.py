"""Sharing annotations through DVC remotes: a colleague pulls them instead of paying for them again."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import TINY_PARAMS
from tests.e2e.pipeline_repo import PipelineRepo
from tests.openai_server import FakeOpenAIServer

SECRET = "sk-e2e-secret-key-0123456789"
SERVED = {
    "backend": "openai",
    "model": "served-judge",
    "n": 2,
    "sampling": {"temperature": 0.7, "max_new_tokens": 64, "seed": 1},
    "concurrency": 16,
    "timeout_s": 10.0,
    "max_retries": 2,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.2,
}
SHARED_PARAMS = {
    **{k: v for k, v in TINY_PARAMS.items() if not k.startswith("annotate.")},
    "annotate.annotators": {"served": SERVED},
}
#: Stages whose outputs live in the DVC cache, so a fresh clone must rebuild them (evaluate's reports are
#: committed to git and its inputs come out identical, so it is up to date in the clone).
DOWNSTREAM = ("aggregate", "split", "train", "filter")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _locked_outputs(repo: PipelineRepo) -> dict[str, dict[str, str]]:
    """Stage → {output path: md5} of the data and models in dvc.lock (reports hold timings, so they differ)."""
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())["stages"]
    return {
        stage: {o["path"]: o["md5"] for o in entry.get("outs", []) if not o["path"].startswith("reports/")}
        for stage, entry in lock.items()
    }


@pytest.fixture(scope="module")
def annotated_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineRepo, int]]:
    """Repository A: the pipeline with an annotator on a served LLM, run and pushed to a local remote."""
    root = tmp_path_factory.mktemp("sharing")
    with FakeOpenAIServer() as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": SECRET}
        repo = PipelineRepo.create(root / "a", SHARED_PARAMS, env=env)
        repo.dvc("remote", "add", "-d", "shared", str(root / "remote"))
        repo.repro()
        repo.commit("annotated")
        repo.dvc("push")
        requests = server.request_count
    yield repo, requests


@pytest.mark.slow
def test_colleague_pulls_annotations_and_reproduces_without_the_llm(
    annotated_repo: tuple[PipelineRepo, int], tmp_path: Path
) -> None:
    repo_a, requests = annotated_repo
    assert requests > 0
    dead_server = f"http://127.0.0.1:{_free_port()}/v1"
    repo_a.run("git", "clone", "-q", str(repo_a.root), str(tmp_path / "b"))
    repo_b = PipelineRepo(tmp_path / "b", env={"OPENAI_BASE_URL": dead_server, "OPENAI_API_KEY": SECRET})
    repo_b.dvc("pull", "annotate@served")
    ran = repo_b.repro()
    assert not [stage for stage in ran if stage.startswith("annotate@")], ran
    assert set(DOWNSTREAM) <= set(ran)
    outputs_a, outputs_b = _locked_outputs(repo_a), _locked_outputs(repo_b)
    for stage in ("sample", "annotate@served", "aggregate", "split", "train", "filter"):
        assert outputs_b[stage] == outputs_a[stage], stage  # the model folder and data/filtered included
    assert set(json.loads(repo_b.dvc("status", "--json").stdout)) <= {"inputs"}
    report = json.loads((repo_b.root / "reports/annotate/served.json").read_text())
    assert report == json.loads((repo_a.root / "reports/annotate/served.json").read_text()), "pulled, not rerun"


@pytest.mark.slow
def test_secrets_stay_out_of_tracked_files_and_outputs(annotated_repo: tuple[PipelineRepo, int]) -> None:
    repo, _ = annotated_repo
    leaks = [
        path
        for path in repo.root.rglob("*")
        if path.is_file() and ".git" not in path.parts and SECRET.encode() in path.read_bytes()
    ]
    assert leaks == []


@pytest.mark.slow
def test_s3_remote_pushes_and_pulls_annotations(annotated_repo: tuple[PipelineRepo, int], tmp_path: Path) -> None:
    boto3 = pytest.importorskip("boto3", reason="the S3 remote needs the test extras (dvc-s3, moto)")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        credentials = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        boto3.client("s3", endpoint_url=endpoint, **_boto_credentials(credentials)).create_bucket(Bucket="annotations")
        repo_a, _ = annotated_repo
        repo_a.dvc("remote", "add", "s3", "s3://annotations/mlfilter")
        repo_a.dvc("remote", "modify", "s3", "endpointurl", endpoint)
        repo_a.dvc("push", "-r", "s3", "annotate@served", env=credentials)
        repo_a.commit("s3 remote")

        repo_a.run("git", "clone", "-q", str(repo_a.root), str(tmp_path / "c"))
        repo_c = PipelineRepo(tmp_path / "c")
        repo_c.dvc("pull", "-r", "s3", "annotate@served", env=credentials)
        pulled = sorted(p.relative_to(repo_c.root) for p in (repo_c.root / "data/annotations/served").iterdir())
        original = sorted(p.relative_to(repo_a.root) for p in (repo_a.root / "data/annotations/served").iterdir())
        assert pulled == original and pulled
        for relative in pulled:
            assert (repo_c.root / relative).read_bytes() == (repo_a.root / relative).read_bytes()
    finally:
        server.stop()


def _boto_credentials(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }
