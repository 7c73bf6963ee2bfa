"""DVC sees every change that matters and none that doesn't, checked with real DVC on the real dvc.yaml.

The stages do not run here (except ``inputs``, which only hashes): every other output is a stand-in
file committed with ``dvc commit``, so ``dvc status`` answers for the pipeline's deps and params alone.
``dvc status`` lists a stage whose own deps or params changed; what follows it reruns once its outputs
change, so a change must make its stage stale and nothing but that stage and what follows it. The
``inputs`` stage runs on every ``dvc repro`` (``always changed``) and is left out of the stale sets.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from tests.e2e.pipeline_repo import REPO_ROOT, PipelineRepo

pytestmark = pytest.mark.slow

CORPUS = REPO_ROOT / "tests" / "annotation" / "data" / "documents.jsonl"
ALWAYS_RUNS = "inputs"
#: A user's own JSONL source, a prompt override for one annotator, and an annotator importing files.
PARAMS: dict[str, Any] = {
    "sample.sources": [{"type": "documents", "paths": ["corpus/documents.jsonl"]}],
    "annotate.annotators.smollm2_logprobs.prompts": {"educational": "prompts/educational_copy.yaml"},
    "annotate.annotators.imported": {
        "backend": "import",
        "import_paths": ["imports/judge.jsonl"],
        "tasks": ["educational"],
    },
}
ANNOTATORS = ("annotate@smollm2_generate", "annotate@smollm2_logprobs", "annotate@imported")
TASKS = [{"name": "educational", "prompt": "prompts/educational_v1.yaml", "num_targets": 6, "threshold": 2}]
#: One result-bearing key per stage (and the shared ones), a new value, and the first stages it makes stale.
RESULT_KEYS: list[tuple[str, Any, tuple[str, ...]]] = [
    ("sample.min_chars", 150, ("sample",)),
    ("annotate.annotators.smollm2_generate.n", 2, ("annotate@smollm2_generate",)),
    ("annotate.annotators.imported.import_paths", ["imports/other.jsonl"], ("annotate@imported",)),
    ("aggregate.method", "median", ("aggregate",)),
    ("split.seed", 7, ("split",)),
    ("training.learning_rate", 2.0e-5, ("train",)),
    ("evaluate.bootstrap_samples", 10, ("evaluate",)),
    ("filter.keep.fraction", 0.5, ("filter",)),
    ("tasks", TASKS, ANNOTATORS),
    ("seed", 7, ("sample",)),
]


def _judge_records(ids: list[str]) -> str:
    return "".join(
        json.dumps({"document_id": i, "scores": [n % 6], "meta_information": {"model_name": "judge"}}) + "\n"
        for n, i in enumerate(ids)
    )


def _placeholder(path: Path) -> None:
    """A stand-in for a stage output: a file for names with a suffix, else a folder holding one file."""
    if path.exists():
        return
    if path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("stand-in\n")
    else:
        path.mkdir(parents=True)
        (path / "part-00000.jsonl").write_text("{}\n")


class Pipeline:
    """The project's pipeline in a temporary repo, with stand-in outputs, and the stage graph."""

    def __init__(self, repo: PipelineRepo) -> None:
        from dvc.repo import Repo

        self.repo = repo
        with Repo(str(repo.root)) as dvc_repo:
            self.graph = nx.DiGraph(dvc_repo.index.graph)
            self.names = {stage: stage.name for stage in self.graph.nodes}
            outs = [Path(out.fs_path) for stage in dvc_repo.index.stages for out in stage.outs]
        for out in outs:
            _placeholder(out)

    def downstream(self, stage: str) -> set[str]:
        """The stages that run after ``stage`` because they read what it writes."""
        node = next(n for n, name in self.names.items() if name == stage)
        return {self.names[n] for n in nx.ancestors(self.graph, node)}

    def stale(self) -> set[str]:
        """Stages ``dvc status`` reports, without the always-run ``inputs`` stage."""
        return set(json.loads(self.repo.dvc("status", "--json").stdout)) - {ALWAYS_RUNS}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    root = tmp_path_factory.mktemp("exactness") / "repo"
    repo = PipelineRepo.create(root, PARAMS)
    (root / "corpus").mkdir()
    shutil.copy(CORPUS, root / "corpus" / "documents.jsonl")
    shutil.copy(root / "prompts" / "educational_v1.yaml", root / "prompts" / "educational_copy.yaml")
    ids = [json.loads(line)["id"] for line in CORPUS.read_text().splitlines()]
    (root / "imports").mkdir()
    (root / "imports" / "judge.jsonl").write_text(_judge_records(ids))
    (root / "imports" / "other.jsonl").write_text(_judge_records(ids[:10]))
    repo.dvc("repro", ALWAYS_RUNS)
    pipeline = Pipeline(repo)
    repo.dvc("commit", "--force")
    repo.commit("stand-in outputs")
    assert pipeline.stale() == set(), "committed stand-ins: nothing is stale"
    yield pipeline


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    data[last] = value


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}")
    else:
        yield prefix, node


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-changed"
    return 1


def test_runtime_knobs_change_nothing(pipeline: Pipeline) -> None:
    repo = pipeline.repo
    original = repo.params()
    knobs = list(_leaves(original["runtime"], "runtime"))
    assert len(knobs) >= 20, knobs
    changed = copy.deepcopy(original)
    for key, value in knobs:
        _set(changed, key, _changed(value))
    try:
        repo.set_params({key: _changed(value) for key, value in knobs})
        assert repo.params() == changed
        assert pipeline.stale() == set(), "a runtime knob is tracked by a stage"
    finally:
        repo.set_params({key: value for key, value in knobs})
    assert pipeline.stale() == set()


@pytest.mark.parametrize(("key", "value", "stages"), RESULT_KEYS, ids=[k for k, _, _ in RESULT_KEYS])
def test_a_result_bearing_key_makes_its_stage_and_only_what_follows_stale(
    pipeline: Pipeline, key: str, value: Any, stages: tuple[str, ...]
) -> None:
    repo = pipeline.repo
    section = key.partition(".")[0]
    before = copy.deepcopy(repo.params()[section])
    try:
        repo.set_params({key: value})
        stale = pipeline.stale()
        assert set(stages) <= stale
        following = set().union(*(pipeline.downstream(stage) for stage in stages))
        assert stale <= set(stages) | following, f"{key} makes unrelated stages stale: {stale}"
    finally:
        repo.set_params({section: before})
    assert pipeline.stale() == set()


def test_the_graph_is_what_the_tests_assume(pipeline: Pipeline) -> None:
    assert pipeline.downstream("split") == {"train", "evaluate", "filter"}
    assert {"aggregate", "evaluate", "split", "train", "filter"} <= pipeline.downstream("annotate@imported")


@pytest.mark.parametrize(
    ("path", "stale"),
    [
        ("corpus/documents.jsonl", {"sample"}),
        ("prompts/educational_copy.yaml", {"annotate@smollm2_logprobs"}),
        ("prompts/educational_v1.yaml", {"annotate@smollm2_generate", "annotate@imported"}),
        ("imports/judge.jsonl", {"annotate@imported"}),
    ],
)
def test_editing_a_named_input_in_place_makes_exactly_its_readers_stale(
    pipeline: Pipeline, path: str, stale: set[str]
) -> None:
    repo = pipeline.repo
    file = repo.root / path
    original = file.read_bytes()
    try:
        lines = original.splitlines(keepends=True)
        file.write_bytes(b"".join(lines[:-1]) if path.endswith(".jsonl") else original + b"# edited in place\n")
        assert pipeline.stale() == set(), "nothing reads the file before the inputs stage hashes it"
        repo.dvc("repro", ALWAYS_RUNS)
        assert pipeline.stale() == stale
    finally:
        file.write_bytes(original)
        repo.dvc("repro", ALWAYS_RUNS)
    assert pipeline.stale() == set()
