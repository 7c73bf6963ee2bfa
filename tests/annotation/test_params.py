"""The annotate params: validation with the key path in the message, and params.yaml itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlfilter.annotation.params import AnnotateParams, AnnotatorParams
from mlfilter.params import ParamsError, convert, load_section

ROOT = Path(__file__).resolve().parents[2]


def annotate_section(annotator: dict) -> AnnotateParams:
    return convert({"annotators": {"a": annotator}}, AnnotateParams, "annotate")


def test_the_project_params_load() -> None:
    section = load_section("annotate", ROOT / "params.yaml")
    assert set(section.annotators) >= {"smollm2_generate", "smollm2_logprobs"}
    assert section.annotator("smollm2_logprobs").score_mode == "logprobs"


def test_values_are_converted_with_types() -> None:
    section = annotate_section(
        {"model": "m", "sampling": {"temperature": "7e-01", "seed": 3}, "tasks": ["educational"]}
    )
    params = section.annotators["a"]
    assert params.sampling.temperature == pytest.approx(0.7)
    assert params.sampling.seed == 3
    assert params.tasks == ("educational",)


@pytest.mark.parametrize(
    ("annotator", "message"),
    [
        ({"model": "m", "colour": "red"}, "annotate.annotators.a.colour: unknown key"),
        (
            {"model": "m", "backend": "vllm"},
            "annotate.annotators.a.backend: expected one of 'openai', 'openai_batch', 'local', 'import'",
        ),
        ({"backend": "openai"}, "model: required for the openai backend"),
        ({"model": "m", "score_mode": "logprobs", "n": 3}, "n: logprobs mode reads one distribution"),
        ({"model": "m", "extra_body": {"api_key": "sk-123"}}, "credentials never go in params"),
        ({"model": "m", "top_logprobs": 50}, "top_logprobs: expected 1..20"),
        ({"model": "m", "score_pattern": "score: \\d"}, "score_pattern: needs one capturing group"),
        ({"model": "m", "sampling": {"temperature": -1}}, "temperature: expected a value >= 0"),
        ({"backend": "import"}, "import_paths: the import backend needs at least one file"),
        ({"model": "m", "batch_max_requests": 50_001}, "batch_max_requests: expected 1..50000"),
        ({"model": "m", "batch_max_bytes": 0}, "batch_max_bytes: expected 1..200000000"),
        ({"model": "m", "price_per_input_token": -1e-6}, "price_per_input_token: expected a price >= 0"),
        ({"model": "m", "poll_interval_s": 0}, "poll_interval_s: expected a value > 0"),
        ({"model": "m", "min_label_mass": 1.5}, "min_label_mass: expected a value in [0, 1]"),
        ({"model": "m", "max_invalid_fraction": -0.1}, "max_invalid_fraction: expected a value in [0, 1]"),
        ({"model": "m", "sampling": {"max_reasoning_tokens": -1}}, "max_reasoning_tokens: expected at least 0"),
        ({"model": "m", "sampling": {"reasoning_effort": "max"}}, "reasoning_effort: expected one of"),
        ({"model": "m", "score_mode": "json", "backend": "local"}, "score_mode: json needs a server"),
        ({"model": "m", "score_mode": "json", "force_reply_prefix": True}, "force_reply_prefix: json mode"),
    ],
)
def test_bad_annotator_params_name_the_key(annotator: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=re.escape(message)):
        annotate_section(annotator)


def test_annotator_names_must_suit_folders() -> None:
    with pytest.raises(ParamsError, match=r"annotators\.a b: an annotator name becomes a folder"):
        convert({"annotators": {"a b": {"model": "m"}}}, AnnotateParams, "annotate")


def test_unknown_annotator_lists_the_known_ones() -> None:
    section = AnnotateParams(annotators={"x": AnnotatorParams(model="m")})
    with pytest.raises(ParamsError, match="no annotator 'y'; known: x"):
        section.annotator("y")


def test_params_yaml_holds_no_secrets() -> None:
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    section = yaml.safe_load(text)["annotate"]
    for annotator in section["annotators"].values():
        assert not {"api_key", "base_url", "url"} & set(annotator)
