"""The aggregate and split stages of the project's dvc.yaml, run by real DVC in a temporary git repo.

A stand-in upstream (annotate stages that copy committed annotation folders, and a committed sample)
feeds the real stage definitions: changing ``aggregate.method`` must rerun aggregate and split only, and a
forced rerun must write byte-identical (compressed) labels and splits.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.labels.conftest import annotation, write_annotations, write_sample
from tests.shell import sh

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

#: The stand-in annotators (annotate.annotators in the test's params.yaml).
NAMES = ("llm-a", "llm-b")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for folder in ("stages", "src"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = {k: params[k] for k in ("seed", "tasks", "aggregate", "split")}
    params["annotate"] = {
        "annotators": {name: {"backend": "import", "import_paths": [f"raw/{name}"]} for name in NAMES}
    }
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    standin = {
        "foreach": "${annotate.annotators}",
        "do": {
            "cmd": "python -c \"import shutil; shutil.copytree('raw/${key}', 'data/annotations/${key}')\"",
            "deps": ["raw/${key}"],
            "params": ["seed"],
            "outs": ["data/annotations/${key}"],
        },
    }
    dvc_yaml = {"stages": {"annotate": standin, "aggregate": stages["aggregate"], "split": stages["split"]}}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))

    docs = [(f"doc-{i}", f"Text of document {i}.", "en" if i % 3 else "de") for i in range(60)]
    write_sample(repo / "data" / "sample", docs)
    (repo / "data" / "gold").mkdir()
    (repo / "data" / "gold" / "README.md").write_text("Reference annotations go here.\n")
    write_annotations(
        repo / "raw", "llm-a", [annotation(d, "llm-a", {"educational": [i % 4]}) for i, (d, _, _) in enumerate(docs)]
    )
    write_annotations(repo / "raw", "llm-b", [annotation(d, "llm-b", {"educational": [5]}) for d, _, _ in docs[:50]])
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.email", "test@example.org")
    sh(repo, "git", "config", "user.name", "test")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "stand-in upstream")
    return repo


def set_param(repo: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def data_hashes(repo: Path) -> dict[str, str]:
    """The md5 dvc.lock records for each data output of aggregate and split (reports hold timings)."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {
        out["path"]: out["md5"]
        for stage in ("aggregate", "split")
        for out in stages[stage]["outs"]
        if out["path"].startswith("data/")
    }


def test_repro_and_method_change_reruns_only_aggregate_and_split(repo: Path) -> None:
    out = sh(repo, "dvc", "repro")
    for stage in ("annotate@llm-a", "annotate@llm-b", "aggregate", "split"):
        assert f"Running stage '{stage}'" in out
    report = json.loads((repo / "reports" / "aggregate.json").read_text())
    assert report["documents"] == {
        "seen": 60,
        "kept": 60,
        "dropped": {"majority_tie": 0, "not_annotated": 0, "too_few_valid_scores": 0},
    }
    assert report["annotations"]["annotators"].keys() == {"llm-a", "llm-b"}
    assert (repo / "data" / "splits" / "train.jsonl.zst").exists()
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status")
    # Rerun from scratch (new processes, later clock): compressed labels and splits hash the same.
    hashes = data_hashes(repo)
    assert set(hashes) == {f"data/labels/{n}.jsonl.zst" for n in ("labels", "gold")} | {
        f"data/splits/{n}.jsonl.zst" for n in ("train", "val", "test")
    }
    out = sh(repo, "dvc", "repro", "--force", "split")
    assert "Running stage 'aggregate'" in out and "Running stage 'split'" in out
    assert data_hashes(repo) == hashes
    metrics = json.loads(sh(repo, "dvc", "metrics", "show", "--json"))[""]["data"]
    assert metrics["reports/metrics/aggregate/documents_labelled.json"]["data"] == {"all": 60}
    split_sizes = sum(
        metrics[f"reports/metrics/split/{name}_documents.json"]["data"]["all"] for name in ("train", "val", "test")
    )
    assert split_sizes == 60
    assert "reports/aggregate.json" not in metrics and "reports/split.json" not in metrics, "reports are no metrics"
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "first run")
    mean_labels = (repo / "data" / "labels" / "labels.jsonl.zst").read_bytes()

    set_param(repo, "aggregate", "method", "max")
    status = json.loads(sh(repo, "dvc", "status", "--json"))
    assert set(status) == {"aggregate"}
    out = sh(repo, "dvc", "repro")
    assert "Running stage 'aggregate'" in out and "Running stage 'split'" in out
    assert "Stage 'annotate@llm-a' didn't change, skipping" in out
    assert "Stage 'annotate@llm-b' didn't change, skipping" in out
    assert (repo / "data" / "labels" / "labels.jsonl.zst").read_bytes() != mean_labels
    assert json.loads((repo / "reports" / "aggregate.json").read_text())["method"] == "max"
    assert "aggregate.method" in sh(repo, "dvc", "params", "diff")

    set_param(repo, "split", "fractions", {"train": 0.5, "val": 0.25, "test": 0.25})
    out = sh(repo, "dvc", "repro")
    assert "Running stage 'split'" in out
    assert "Stage 'aggregate' didn't change, skipping" in out
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status")

    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "max, 50/25/25")
    out = sh(repo, "dvc", "exp", "run", "-S", "aggregate.method=dawid_skene")
    assert "Running stage 'aggregate'" in out and "Stage 'annotate@llm-a' didn't change, skipping" in out
    assert json.loads((repo / "reports" / "aggregate.json").read_text())["method"] == "dawid_skene"
