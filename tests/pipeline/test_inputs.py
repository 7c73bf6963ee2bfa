"""The inputs stage's hashes, and the aggregate/evaluate selection of the configured annotators."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mlfilter.errors import MlfilterError
from mlfilter.inputs import REMOTE, prune_lock, write_inputs
from mlfilter.labels.annotations import configured_annotations

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the repository's params, a prompt override, a local source and an import annotator."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO_ROOT / "prompts", tmp_path / "prompts")
    shutil.copy(tmp_path / "prompts" / "educational_v1.yaml", tmp_path / "prompts" / "mine.yaml")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.jsonl").write_text('{"id": "1", "text": "x"}\n')
    (tmp_path / "corpus" / "b.jsonl.gz").write_bytes(b"")
    (tmp_path / "imports").mkdir()
    (tmp_path / "imports" / "judge.jsonl").write_text('{"document_id": "1", "scores": [3]}\n')
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["sample"]["sources"] = [
        {"type": "documents", "paths": ["corpus", "s3://bucket/shards/*.parquet"]},
        {"type": "commoncrawl", "crawl": "CC-MAIN-2024-33"},
    ]
    params["annotate"]["annotators"]["smollm2_logprobs"]["prompts"] = {"educational": "prompts/mine.yaml"}
    params["annotate"]["annotators"]["imported"] = {"backend": "import", "import_paths": ["imports"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_hashes_of_named_files_one_file_per_consumer(project: Path) -> None:
    counts = write_inputs("data/inputs")
    sample = _read(project / "data/inputs/sample.json")["sources"]
    assert sample == {
        "corpus/a.jsonl": sample["corpus/a.jsonl"],
        "corpus/b.jsonl.gz": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # empty file
        "s3://bucket/shards/*.parquet": REMOTE,
    }
    generate = _read(project / "data/inputs/annotate/smollm2_generate.json")
    logprobs = _read(project / "data/inputs/annotate/smollm2_logprobs.json")
    imported = _read(project / "data/inputs/annotate/imported.json")
    assert list(generate["prompts"]) == ["prompts/educational_v1.yaml"]
    assert list(logprobs["prompts"]) == ["prompts/mine.yaml"]
    assert generate["prompts"]["prompts/educational_v1.yaml"] == logprobs["prompts"]["prompts/mine.yaml"], "copies"
    assert list(imported["import_paths"]) == ["imports/judge.jsonl"]
    assert counts == {
        "sample": 3,
        "annotate@smollm2_generate": 1,
        "annotate@smollm2_logprobs": 1,
        "annotate@imported": 2,
    }

    before = (project / "data/inputs/annotate/smollm2_logprobs.json").read_bytes()
    with open(project / "prompts" / "mine.yaml", "a") as handle:
        handle.write("# edited in place\n")
    write_inputs("data/inputs")
    assert (project / "data/inputs/annotate/smollm2_logprobs.json").read_bytes() != before
    assert _read(project / "data/inputs/annotate/smollm2_generate.json") == generate, "other annotators unchanged"


def test_a_removed_annotator_loses_its_hash_file(project: Path) -> None:
    write_inputs("data/inputs")
    params = yaml.safe_load((project / "params.yaml").read_text())
    del params["annotate"]["annotators"]["imported"]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    write_inputs("data/inputs")
    assert sorted(p.name for p in (project / "data/inputs/annotate").iterdir()) == [
        "smollm2_generate.json",
        "smollm2_logprobs.json",
    ]


def test_a_named_file_that_is_missing_is_an_error(project: Path) -> None:
    (project / "corpus" / "a.jsonl").unlink()
    (project / "corpus" / "b.jsonl.gz").unlink()
    with pytest.raises(MlfilterError, match="corpus: no record files match"):
        write_inputs("data/inputs")


def test_configured_annotations_reads_exactly_the_configured_and_sets_the_others_aside(tmp_path: Path) -> None:
    root = tmp_path / "annotations"
    for name in ("a", "b", "gone"):
        (root / name).mkdir(parents=True)
        (root / name / "part-00000.jsonl").write_text("{}\n")
    aside = tmp_path / "aside"
    assert configured_annotations(root, ["b", "a"], set_aside=aside) == [str(root / "b"), str(root / "a")]
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]
    assert (aside / "gone" / "part-00000.jsonl").is_file(), "moved, not deleted"
    with pytest.raises(MlfilterError, match=r"no annotations of annotator 'c'; run `dvc repro annotate@c`"):
        configured_annotations(root, ["a", "c"], set_aside=None)


def test_prune_lock_drops_only_removed_annotators(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    entries = {"sample": {"cmd": "s"}, "annotate@a": {"cmd": "a"}, "annotate@gone": {"cmd": "g"}, "train": {}}
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": entries}, sort_keys=False))
    assert prune_lock(lock, ["a"]) == ["annotate@gone"]
    assert list(yaml.safe_load(lock.read_text())["stages"]) == ["sample", "annotate@a", "train"]
    assert prune_lock(lock, ["a"]) == [] and prune_lock(tmp_path / "missing.lock", []) == []
