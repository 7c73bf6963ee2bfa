"""What `dvc metrics show` and `dvc metrics diff` print for the whole pipeline: headline figures only, narrow, stable.

Real DVC in a temporary git repository, the real dvc.yaml and tiny params (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import TINY_PARAMS
from tests.e2e.pipeline_repo import PipelineRepo

#: Terminal width `dvc metrics show` must fit in (the demo has one task).
MAX_COLUMNS = 120
#: One headline folder per stage (per annotator for annotate).
HEADLINE_FOLDERS = {
    "reports/metrics/sample",
    "reports/metrics/annotate/smollm2_generate",
    "reports/metrics/annotate/smollm2_logprobs",
    "reports/metrics/aggregate",
    "reports/metrics/split",
    "reports/metrics/train",
    "reports/metrics/evaluate",
    "reports/metrics/filter",
}
#: Words that name a figure of the machine rather than of the data or the model.
MACHINE_WORDS = ("second", "per_s", "throughput", "latency", "runtime", "flos", "tokens")


def _widest(text: str) -> tuple[int, str]:
    return max((len(line), line) for line in text.splitlines())


@pytest.mark.slow
def test_metrics_show_is_narrow_and_an_identical_rerun_diffs_empty(tmp_path: Path) -> None:
    repo = PipelineRepo.create(tmp_path / "project", TINY_PARAMS)
    repo.repro()
    repo.commit("first run")

    shown = json.loads(repo.dvc("metrics", "show", "--json").stdout)[""]["data"]
    assert {str(Path(path).parent) for path in shown} == HEADLINE_FOLDERS
    for path, entry in shown.items():
        assert "error" not in entry, (path, entry)
        assert set(entry["data"]) <= {"all", "educational"}, f"{path}: one key per task (or all), not {entry['data']}"
        assert not any(word in path for word in MACHINE_WORDS), f"{path} is a figure of the machine, not the data"
    evaluate = {Path(path).stem: entry["data"] for path, entry in shown.items() if "/evaluate/" in path}
    assert {"agreement_alpha_ordinal", "test_spearman", "margin_spearman", "label_ceiling_ratio"} <= set(evaluate)
    for text in (repo.dvc("metrics", "show").stdout, repo.dvc("metrics", "show", "--md").stdout):
        width, line = _widest(text)
        assert width <= MAX_COLUMNS, f"`dvc metrics show` is {width} columns wide:\n{line}\n\n{text}"

    forced = repo.repro("-f")
    assert "evaluate" in forced and "train" in forced and "filter" in forced, forced
    diff = repo.dvc("metrics", "diff")
    assert diff.stdout.strip() == "", f"an identical rerun changed headline metrics:\n{diff.stdout}"
    assert json.loads(repo.dvc("metrics", "diff", "--json").stdout) == {}
