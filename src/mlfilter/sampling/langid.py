"""Language identification and language-code normalization.

Two backends: ``py3langid`` (the naive-Bayes model inside py3langid, 97 languages, fast) and ``lingua``
(``lingua-language-detector``: 75 languages with n-gram models up to 5-grams, much better on the close
pairs bs/hr/sr, nb/nn/da, ca/es, cs/sk, but about 10-100× slower and it knows neither Galician nor
Maltese). No package ships GlotLID or OpenLID weights, which would cover 200+ languages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

import langcodes

from mlfilter.errors import MlfilterError

#: Characters of a document the identifier reads. py3langid's cost grows with the text (about 3 ms for
#: 5,000 characters); on the demo corpus its verdict on the first 5,000 agrees with the whole text's
#: for 837 of 841 pages.
LANGID_MAX_CHARS = 5_000
UNDETERMINED = "und"
LanguageIdBackend = Literal["py3langid", "lingua"]
#: The PyPI package of each backend (its version is part of the sample's work-file fingerprint).
BACKEND_PACKAGES: dict[str, str] = {"py3langid": "py3langid", "lingua": "lingua-language-detector"}
#: Confidence histograms in the sample report: 10 bins of width 0.1 over [0, 1] (the last one closed).
CONFIDENCE_BINS = 10


def confidence_bin(score: float) -> int:
    """The histogram bin of a confidence in [0, 1]: ``floor(10 * score)``, with 1.0 in the last bin."""
    return min(int(score * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)


def normalize_language(code: str) -> str:
    """An ISO 639-1 code where one exists (``deu_Latn`` → ``de``, ``pt-BR`` → ``pt``, ``cmn`` → ``zh``).

    Region and script subtags are dropped; codes without a two-letter form stay as they are (``yue``).
    """
    tag = code.strip().replace("_", "-")
    if not tag:
        return UNDETERMINED
    try:
        language = langcodes.Language.get(langcodes.standardize_tag(tag, macro=True)).language
    except ValueError:
        return tag.split("-")[0].lower()
    return language or UNDETERMINED


@dataclass(frozen=True)
class LanguageGuess:
    """A language code (ISO 639-1 where possible) and the identifier's confidence in [0, 1]."""

    language: str
    score: float


class Identifier(Protocol):
    """What the sample needs of a language identifier."""

    name: str
    languages: frozenset[str]

    def identify(self, text: str) -> LanguageGuess:
        """The most likely language of ``text`` and the confidence in it."""
        ...

    def check_supported(self, languages: tuple[str, ...]) -> None:
        """Raise if the identifier can never return one of ``languages``."""
        ...


class _SupportCheck:
    name: str
    languages: frozenset[str]

    def check_supported(self, languages: tuple[str, ...]) -> None:
        """Raise :class:`MlfilterError` naming the languages the identifier can never return."""
        unknown = [lang for lang in languages if lang not in self.languages]
        if unknown:
            raise MlfilterError(
                f"sample.targets: {self.name} does not identify {', '.join(unknown)}; "
                f"it knows {', '.join(sorted(self.languages))}"
            )


class LanguageIdentifier(_SupportCheck):
    """py3langid's naive-Bayes model (97 languages) with probabilities normalized to [0, 1]."""

    name = "py3langid"

    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as Py3LangId

        self._model = Py3LangId.from_model_file(MODEL_FILE, norm_probs=True)
        self.languages = frozenset(normalize_language(label) for label in self._model.labels)

    def identify(self, text: str) -> LanguageGuess:
        """The most likely language of ``text`` (its first :data:`LANGID_MAX_CHARS` characters)."""
        label, score = self._model.classify(text[:LANGID_MAX_CHARS])
        return LanguageGuess(normalize_language(label), round(float(score), 4))


class LinguaIdentifier(_SupportCheck):
    """lingua's detector over all its 75 languages; the score is its confidence in the top language.

    Its models load on first use (tens of seconds, about 1 GB), once per process.
    """

    name = "lingua"

    def __init__(self) -> None:
        try:
            from lingua import Language, LanguageDetectorBuilder
        except ImportError:
            raise MlfilterError(
                "sample.language_id 'lingua' needs lingua-language-detector: pip install 'mlfilter[lingua]'"
            ) from None
        self._detector = LanguageDetectorBuilder.from_all_languages().build()
        self.languages = frozenset(_lingua_code(language) for language in Language.all())

    def identify(self, text: str) -> LanguageGuess:
        """The most likely language of ``text`` (its first :data:`LANGID_MAX_CHARS` characters), or
        ``und`` with score 0 when lingua finds none (no letters)."""
        values = self._detector.compute_language_confidence_values(text[:LANGID_MAX_CHARS])
        if not values or values[0].value <= 0:
            return LanguageGuess(UNDETERMINED, 0.0)
        return LanguageGuess(_lingua_code(values[0].language), round(float(values[0].value), 4))


def _lingua_code(language: object) -> str:
    return normalize_language(language.iso_code_639_1.name)  # type: ignore[attr-defined]


@lru_cache(maxsize=2)
def language_identifier(backend: LanguageIdBackend = "py3langid") -> Identifier:
    """The process-wide identifier of ``backend`` (its model loads once per process)."""
    return LinguaIdentifier() if backend == "lingua" else LanguageIdentifier()
