"""The whole pipeline through real DVC in a temporary git repository, with the embedded annotators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlfilter.params import load_section
from tests.e2e.conftest import TINY_PARAMS
from tests.e2e.pipeline_repo import PipelineRepo, stages_run

#: The inputs stage only hashes the files params.yaml names; it runs on every `dvc repro`.
ALWAYS = "inputs"
ALL_STAGES = {
    ALWAYS,
    "sample",
    "annotate@smollm2_generate",
    "annotate@smollm2_logprobs",
    "aggregate",
    "split",
    "train",
    "evaluate",
    "filter",
}


def assert_reports_are_strict_json(root: Path) -> int:
    """Every JSON file under ``reports/`` parses with a strict parser (no NaN, no Infinity); returns how many."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    paths = sorted((root / "reports").rglob("*.json"))
    for path in paths:
        try:
            json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
        except ValueError as exc:
            raise AssertionError(f"{path.relative_to(root)}: {exc}") from None
    return len(paths)


def _new_prompt_version(repo: PipelineRepo) -> str:
    """Write prompts/educational_v2.yaml: v1 with a reworded English system message."""
    prompt = yaml.safe_load((repo.root / "prompts/educational_v1.yaml").read_text())
    prompt["version"] = 2
    prompt["languages"]["en"]["system"] = "You are a strict teacher who rates web pages for use in school lessons."
    (repo.root / "prompts/educational_v2.yaml").write_text(yaml.safe_dump(prompt, allow_unicode=True, sort_keys=False))
    return "prompts/educational_v2.yaml"


@pytest.mark.slow
def test_pipeline_runs_end_to_end_and_reruns_only_what_changed(tmp_path: Path) -> None:
    repo = PipelineRepo.create(tmp_path / "project", TINY_PARAMS)

    assert set(repo.repro()) == ALL_STAGES
    for output in (
        "data/sample",
        "data/annotations/smollm2_generate",
        "data/annotations/smollm2_logprobs",
        "data/labels/labels.jsonl.zst",
        "data/splits/test.jsonl.zst",
        "models/annotator/final/model.safetensors",
        "models/annotator/final/README.md",
        "reports/evaluate/metrics.json",
        "data/filtered",
    ):
        assert (repo.root / output).exists(), output
    assert assert_reports_are_strict_json(repo.root) >= 6  # sample, aggregate, split, train, evaluate, filter …
    sample_report = json.loads((repo.root / "reports/sample.json").read_text())
    assert sample_report["documents_kept"] == 24
    assert sample_report["records"]["seen"] == sample_report["records"]["kept"] + sum(
        sample_report["records"]["dropped"].values()
    )
    repo.commit("first run")

    assert repo.repro() == [ALWAYS], "a second dvc repro must do nothing but hash the named inputs"

    prompt = _new_prompt_version(repo)
    repo.set_params({"annotate.annotators.smollm2_generate.prompts": {"educational": prompt}})
    status = json.loads(repo.dvc("status", "--json").stdout)
    assert set(status) - {ALWAYS} == {"annotate@smollm2_generate", "aggregate", "evaluate"}, "it and what follows"
    ran = repo.repro()
    assert ran[:2] == [ALWAYS, "annotate@smollm2_generate"]
    assert "aggregate" in ran
    assert not {"sample", "annotate@smollm2_logprobs"} & set(ran)
    repo.commit("educational_v2 for smollm2_generate")

    before = json.loads((repo.root / "reports/train/metrics.json").read_text())
    experiment = repo.dvc("exp", "run", "-S", "training.max_length=32")
    assert set(stages_run(experiment.stdout)) == {ALWAYS, "train", "evaluate", "filter"}
    assert load_section("training", repo.root / "params.yaml").max_length == 32
    after = json.loads((repo.root / "reports/train/metrics.json").read_text())
    assert after != before
    diff = json.loads(repo.dvc("metrics", "diff", "--json").stdout)
    changed = [path for path, entries in diff.items() if any(change.get("diff") for change in entries.values())]
    assert any(path.startswith("reports/metrics/train/") for path in changed), diff
