"""Language identification and code normalization."""

from __future__ import annotations

import pytest

from mlfilter.errors import MlfilterError
from mlfilter.sampling.langid import LANGID_MAX_CHARS, language_identifier, normalize_language
from tests.sampling.helpers import texts


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("de", "de"),
        ("deu_Latn", "de"),
        ("zh-cn", "zh"),
        ("cmn_Hani", "zh"),
        ("pt-BR", "pt"),
        ("PT_br", "pt"),
        ("srp_Cyrl", "sr"),
        ("iw", "he"),
        ("yue", "yue"),
        ("", "und"),
    ],
)
def test_normalize_language(code: str, expected: str) -> None:
    assert normalize_language(code) == expected


@pytest.mark.parametrize("language", ["en", "de", "es", "sr", "ko", "ja"])
def test_identifies_real_texts_with_a_confidence(language: str) -> None:
    identifier = language_identifier()
    for text in texts(language):
        guess = identifier.identify(text)
        assert guess.language == language
        assert 0.5 < guess.score <= 1.0


def test_only_the_start_of_a_long_text_is_read() -> None:
    identifier = language_identifier()
    german = texts("de")[0]
    padded = (german + "\n") * (LANGID_MAX_CHARS // len(german) + 1) + texts("ja")[0] * 200
    assert identifier.identify(padded).language == "de"


def test_unknown_target_languages_are_reported() -> None:
    with pytest.raises(MlfilterError, match="py3langid does not identify nb, xx"):
        language_identifier().check_supported(("de", "nb", "xx"))
