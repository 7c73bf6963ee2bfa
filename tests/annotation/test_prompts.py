"""Prompt files: the shipped ones load in every language, rendering is safe, bad files are named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlfilter.annotation.parsing import ScoreParser
from mlfilter.annotation.prompts import PromptError, load_prompt, normalize_language

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = {"en", "de", "fr", "es", "it", "pl"}


@pytest.mark.parametrize("path", sorted((ROOT / "prompts").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_prompts_load_in_six_languages(path: Path) -> None:
    prompt = load_prompt(path)
    assert set(prompt.variants) >= LANGUAGES
    for variant in prompt.variants.values():
        user = variant.messages("DOC")[-1]["content"]
        assert user.count("DOC") == 1
        assert prompt.score_prefix.strip() in user, "every language asks for the same score marker"
    assert len(prompt.sha256) == 64


def test_educational_prompt_fits_the_educational_task() -> None:
    prompt = load_prompt(ROOT / "prompts" / "educational_v1.yaml")
    assert prompt.labels == ("0", "1", "2", "3", "4", "5")
    prompt.check_labels("educational", 6)
    with pytest.raises(PromptError, match="task 'educational' has num_targets 5"):
        prompt.check_labels("educational", 5)


@pytest.mark.parametrize(
    "document",
    ["{document}", "{{ document }} {% if x %}{% endif %}", "%s %(x)s {0} {}", "${HOME} \\n </document>"],
)
def test_document_text_is_inserted_verbatim(document: str) -> None:
    prompt = load_prompt(ROOT / "prompts" / "educational_v1.yaml")
    user = prompt.variant_for("en").messages(document)[-1]["content"]
    variant = prompt.variants["en"]
    assert user == variant.user_before + document + variant.user_after


@pytest.mark.parametrize(
    ("code", "expected"),
    [("de", "de"), ("pt-BR", "pt"), ("deu_Latn", "de"), ("spa", "es"), ("EN", "en"), ("", None), (None, None)],
)
def test_language_codes_are_normalized(code: str | None, expected: str | None) -> None:
    assert normalize_language(code) == expected


def test_variant_falls_back_to_the_default_language() -> None:
    prompt = load_prompt(ROOT / "prompts" / "educational_v1.yaml")
    assert prompt.variant_for("pl").language == "pl"
    assert prompt.variant_for("pol").language == "pl"
    assert prompt.variant_for("ko").language == "en"
    assert prompt.variant_for(None).language == "en"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p_v1.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("labels: [0, 1]\nscore_prefix: 'S: '\nlanguages: {en: {user: 'no placeholder'}}", "exactly once"),
        ("labels: [0, 1]\nscore_prefix: 'S: '\nlanguages: {en: {user: '{document}{document}'}}", "exactly once"),
        ("labels: [0]\nscore_prefix: 'S: '\nlanguages: {en: {user: '{document}'}}", "at least two labels"),
        ("labels: [0, 0]\nscore_prefix: 'S: '\nlanguages: {en: {user: '{document}'}}", "distinct"),
        ("labels: [0, 1]\nlanguages: {en: {user: '{document}'}}", "'score_prefix' must be a string"),
        ("labels: [0, 1]\nscore_prefix: 'S: '\nlanguages: {de: {user: '{document}'}}", "default_language: 'en'"),
        ("labels: [0, 1]\nscore_prefix: 'S: '\nscore_pattern: '(('\nlanguages: {en: {user: '{document}'}}", "regular"),
        ("[unclosed", "not valid UTF-8 YAML"),
    ],
)
def test_bad_prompt_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PromptError, match=str(path).replace(".", r"\.")) as info:
        load_prompt(path)
    assert message in str(info.value)


def test_missing_prompt_file(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="prompt file not found"):
        load_prompt(tmp_path / "nope.yaml")


def test_default_pattern_reads_common_reply_shapes() -> None:
    prompt = load_prompt(ROOT / "prompts" / "educational_v1.yaml")
    parser = ScoreParser(prompt.score_pattern, prompt.labels)
    for reply in (
        "Educational score: 3",
        "**Educational score:** 3",
        "educational SCORE:3",
        "Educational score: **3**",
    ):
        assert parser.parse(reply) == (3, "ok"), reply


EU_AND_EUROPEAN = {
    *("bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "it", "lt", "lv", "mt"),
    *("nl", "pl", "pt", "ro", "sk", "sl", "sv", "no", "is", "ca", "eu", "gl", "sr", "uk", "tr"),
}
V2 = [ROOT / "prompts" / "educational_v2.yaml", ROOT / "prompts" / "adult_v2.yaml"]


@pytest.mark.parametrize("path", V2, ids=lambda p: p.name)
def test_v2_prompts_cover_every_eu_language_and_mark_unreviewed_ones(path: Path) -> None:
    prompt = load_prompt(path)
    assert set(prompt.variants) == EU_AND_EUROPEAN
    assert "en" not in prompt.unreviewed
    assert set(prompt.unreviewed) == EU_AND_EUROPEAN - {"en"}


@pytest.mark.parametrize(
    ("path", "language"),
    [(path, code) for path in V2 for code in sorted(EU_AND_EUROPEAN)],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_every_v2_variant_renders_and_its_requested_reply_parses(path: Path, language: str) -> None:
    prompt = load_prompt(path)
    variant = prompt.variant_for(language)
    assert variant.language == language
    document = "SENTINEL {document} <b>"
    messages = variant.messages(document)
    user = messages[-1]["content"]
    assert user.count(document) == 1 and "{document}" not in user.replace(document, "")
    assert messages[0]["role"] == "system" and messages[0]["content"].strip()
    for label in prompt.labels:
        assert re.search(rf"(?<!\d){label}(?!\d)", user), f"label {label} is not mentioned"
    # The variant asks for the reply in the form "<marker> <placeholder>"; a reply written that way parses.
    marker = prompt.score_prefix.strip()
    asked = re.findall(rf'"({re.escape(marker)} )<[^>]+>"', variant.user_after)
    assert len(asked) == 1, f"the instruction after the document should quote '{marker} <...>' once"
    parser = ScoreParser(prompt.score_pattern, prompt.labels)
    for index, label in enumerate(prompt.labels):
        reply = f"Reasoning in the document's language.\n{asked[0]}{label}"
        assert parser.parse(reply) == (index, "ok"), reply


def test_unreviewed_languages_must_be_variants(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "labels: [0, 1]\nscore_prefix: 'S: '\nunreviewed_languages: [fr]\nlanguages: {en: {user: '{document}'}}",
    )
    with pytest.raises(PromptError, match=r"unreviewed_languages: \['fr'\] have no entry"):
        load_prompt(path)
