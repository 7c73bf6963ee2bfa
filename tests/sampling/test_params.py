"""The typed ``sample:`` params section."""

from __future__ import annotations

import pytest

from mlfilter.params import ParamsError, load_section
from mlfilter.sampling.params import SampleParams

WARC_SOURCE = {"type": "warc", "paths": ["data/demo/*.warc.gz"]}


def load(section: dict) -> SampleParams:
    return load_section("sample", raw={"sample": section})


def test_repository_params_load() -> None:
    params = load_section("sample", "params.yaml")
    assert params.sources[0].type == "warc"
    assert sum(params.targets.values()) >= 250


def test_language_codes_are_normalized_and_form_the_allow_list() -> None:
    params = load({"sources": [WARC_SOURCE], "targets": {"zh-cn": 5, "pt-BR": 3}, "fractions": {"deu": 0.5}})
    assert params.targets == {"zh": 5, "pt": 3}
    assert params.fractions == {"de": 0.5}
    assert params.languages == ("de", "pt", "zh")


def test_fractions_written_as_strings_by_dvc_are_floats() -> None:
    assert load({"sources": [WARC_SOURCE], "fractions": {"pl": "1e-2"}}).fractions == {"pl": 0.01}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"sources": [WARC_SOURCE]}, "targets: name at least one language"),
        ({"sources": [WARC_SOURCE], "targets": {"de": 5}, "fractions": {"de": 0.1}}, "targets.de: a language"),
        ({"sources": [WARC_SOURCE], "targets": {"de": 0}}, "targets.de: expected at least 1"),
        ({"sources": [WARC_SOURCE], "fractions": {"de": 1.5}}, "fractions.de: expected a fraction"),
        ({"sources": [WARC_SOURCE], "targets": {"zh": 1, "zh-TW": 2}}, "targets.zh-TW: the same language"),
        ({"sources": [WARC_SOURCE], "targets": {"de": 1}, "min_chars": 10, "max_chars": 5}, "min_chars, max_chars"),
        ({"sources": [WARC_SOURCE], "targets": {"de": 1}, "extractor": "bs4"}, "sample.extractor: expected one of"),
        ({"sources": [{"type": "commoncrawl", "crawl": "2024-33"}], "targets": {"de": 1}}, "crawl: expected a crawl"),
        ({"sources": [{"type": "warc"}], "targets": {"de": 1}}, "paths: a warc source needs"),
        (
            {"sources": [{"type": "warc", "paths": ["x"], "fields": {"id": "doc"}}], "targets": {"de": 1}},
            "fields: only a documents source",
        ),
        (
            {"sources": [{"type": "documents", "paths": ["x"], "fields": {"body": "text"}}], "targets": {"de": 1}},
            "fields.body: unknown Document field",
        ),
        ({"sources": [{"type": "warc", "paths": ["x"], "colour": 1}], "targets": {"de": 1}}, "sources[0].colour"),
    ],
)
def test_invalid_params_name_the_key(section: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(section)
