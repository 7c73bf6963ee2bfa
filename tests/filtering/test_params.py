"""The filter: section of params.yaml, typed and validated."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlfilter.filtering.params import FilterParams
from mlfilter.params import ParamsError, load_section

ROOT = Path(__file__).resolve().parents[2]


def test_project_params_load_as_filter_params() -> None:
    params = load_section("filter", ROOT / "params.yaml")
    assert isinstance(params, FilterParams)
    assert params.inputs == ("data/sample",) and params.keep.rule == "quantile"
    assert params.scoring.max_length == 512 and params.engine == "local"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"engine": "spark"}, r"filter\.engine: expected one of 'local', 'ray'"),
        ({"keep": {"rule": "best"}}, r"filter\.keep\.rule: expected one of"),
        ({"keep": {"fraction": 1.5}}, r"filter\.keep\.fraction: expected a value in \[0, 1\]"),
        ({"scoring": {"long_documents": "chunk", "max_length": 64, "chunk_overlap": 40}}, r"chunk_overlap"),
        ({"scoring": {"token_budget": -1}}, r"filter\.scoring\.token_budget: expected 0 \(auto\) or more"),
        ({"scoring": {"window": 0}}, r"filter\.scoring\.window: expected a positive integer"),
        ({"fields": {"body": "text"}}, r"filter\.fields\.body: unknown document field"),
        ({"inputs": []}, r"filter\.inputs: at least one"),
        ({"keep": {"thresholds": {"educational": "high"}}}, r"filter\.keep\.thresholds\.educational: expected float"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"filter": change}))
    with pytest.raises(ParamsError, match=message):
        load_section("filter", path)


def test_thresholds_calibrated_is_the_one_word_accepted(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"filter": {"keep": {"rule": "threshold", "thresholds": "calibrated"}}}))
    assert load_section("filter", path).keep.thresholds == "calibrated"
    path.write_text(yaml.safe_dump({"filter": {"keep": {"thresholds": "calibrate"}}}))
    with pytest.raises(ParamsError, match=r"filter\.keep\.thresholds: expected .*'calibrated', got 'calibrate'"):
        load_section("filter", path)


def test_dvc_exp_style_strings_become_numbers(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"filter": {"keep": {"fraction": "5e-02", "thresholds": {"educational": "3"}}}}))
    params = load_section("filter", path)
    assert params.keep.fraction == 0.05 and params.keep.thresholds == {"educational": 3.0}
