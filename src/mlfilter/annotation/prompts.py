"""Versioned prompt files and safe rendering.

A prompt file (YAML, e.g. ``prompts/educational_v1.yaml``) holds, for one task::

    task: educational                  # the task it was written for (informative)
    version: 1
    labels: ["0", "1", "2", "3", "4", "5"]   # what the model writes; label i is score i
    score_prefix: "Educational score: "      # the reply prefix logprobs mode forces
    score_pattern: '...'               # optional regex with one group; default: built from score_prefix
    default_language: en
    unreviewed_languages: [de, fr]    # optional: variants no native speaker has reviewed yet
    languages:
      en: {system: "...", user: "... {document} ..."}
      de: {system: "...", user: "..."}

The user template holds the placeholder ``{document}`` exactly once. Rendering splits the template
at that placeholder and joins the parts around the document text, so braces, ``{{ }}`` or ``%s`` in a
document are plain data — no ``str.format`` or Jinja ever sees a document. A new prompt version is a
new file; records carry the file's name and SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlfilter.errors import MlfilterError

PLACEHOLDER = "{document}"
#: Codes routed to a variant of another code when they have none of their own (Norwegian Bokmål/Nynorsk → no).
_VARIANT_ALIASES = {"nb": "no", "nn": "no"}
#: How a document without a language is counted among the fallbacks.
UNKNOWN_LANGUAGE = "unknown"

#: ISO 639-3 / ISO 639-2 codes (as FineWeb-2 writes them, e.g. ``deu_Latn``) → ISO 639-1.
_ISO3_TO_ISO1 = {
    "bul": "bg",
    "ces": "cs",
    "cze": "cs",
    "dan": "da",
    "deu": "de",
    "ger": "de",
    "ell": "el",
    "gre": "el",
    "eng": "en",
    "spa": "es",
    "est": "et",
    "fin": "fi",
    "fra": "fr",
    "fre": "fr",
    "gle": "ga",
    "hrv": "hr",
    "hun": "hu",
    "ita": "it",
    "lit": "lt",
    "lav": "lv",
    "mlt": "mt",
    "nld": "nl",
    "dut": "nl",
    "pol": "pl",
    "por": "pt",
    "ron": "ro",
    "rum": "ro",
    "slk": "sk",
    "slo": "sk",
    "slv": "sl",
    "swe": "sv",
    "nor": "no",
    "nob": "nb",
    "nno": "nn",
    "isl": "is",
    "ice": "is",
    "cat": "ca",
    "eus": "eu",
    "baq": "eu",
    "glg": "gl",
    "srp": "sr",
    "bos": "bs",
    "mkd": "mk",
    "mac": "mk",
    "sqi": "sq",
    "alb": "sq",
    "ukr": "uk",
    "rus": "ru",
    "tur": "tr",
    "jpn": "ja",
    "kor": "ko",
    "zho": "zh",
    "chi": "zh",
    "cmn": "zh",
    "ara": "ar",
    "hin": "hi",
}


class PromptError(MlfilterError):
    """A prompt file is missing, malformed or does not fit its task; the message names file and key."""


def normalize_language(code: str | None) -> str | None:
    """``"pt-BR"`` → ``"pt"``, ``"deu_Latn"`` → ``"de"``, ``"EN"`` → ``"en"``; None stays None."""
    if not code:
        return None
    base = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    return _ISO3_TO_ISO1.get(base, base)


@dataclass(frozen=True)
class PromptVariant:
    """The prompt in one language: a system message and a user template split at the document."""

    language: str
    system: str
    user_before: str
    user_after: str

    def messages(self, document_text: str) -> list[dict[str, str]]:
        """The chat messages for one document; the text is inserted verbatim."""
        user = self.user_before + document_text + self.user_after
        if self.system:
            return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        return [{"role": "user", "content": user}]


@dataclass(frozen=True)
class PromptFile:
    """A loaded, validated prompt file."""

    path: str
    name: str
    sha256: str
    labels: tuple[str, ...]
    score_prefix: str
    score_pattern: str
    default_language: str
    variants: dict[str, PromptVariant]
    unreviewed: tuple[str, ...] = ()

    def variant_for(self, language: str | None) -> PromptVariant:
        """The variant for a document's language (``pt-br`` → ``pt``), else the default language's."""
        code = normalize_language(language)
        return self.variants.get(code or "", self.variants[self.default_language])

    def check_labels(self, task: str, num_targets: int) -> None:
        """Raise unless the prompt's labels are exactly the task's ``num_targets`` labels."""
        if len(self.labels) != num_targets:
            raise PromptError(
                f"{self.path}: labels: {len(self.labels)} labels {list(self.labels)}, but task {task!r} has "
                f"num_targets {num_targets} (labels 0..{num_targets - 1})"
            )


@dataclass
class LanguageRouter:
    """Picks each document's own language variant of a prompt, else the ``fallback`` language's variant.

    ``fallbacks`` counts, per document language, the documents that got the fallback (``unknown`` for a
    document without a language). With ``fallback`` ``None``, a language without a variant is an error:
    :meth:`check` finds such languages before any request is sent.
    """

    prompt: PromptFile
    fallback: str | None = "en"
    fallbacks: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.fallback = normalize_language(self.fallback)
        if self.fallback is not None and self.fallback not in self.prompt.variants:
            raise PromptError(
                f"{self.prompt.path}: fallback_language {self.fallback!r} has no variant; "
                f"variants: {', '.join(sorted(self.prompt.variants))}"
            )

    def own_variant(self, language: str | None) -> PromptVariant | None:
        """The variant written for ``language`` (``pt-BR`` → ``pt``, ``nb`` → ``no``), or ``None``."""
        code = normalize_language(language) or ""
        variant = self.prompt.variants.get(code)
        if variant is None and code in _VARIANT_ALIASES:
            variant = self.prompt.variants.get(_VARIANT_ALIASES[code])
        return variant

    def variant(self, language: str | None, *, count: bool = True) -> PromptVariant:
        """The variant for a document in ``language``; a fallback is counted when ``count``.

        Raises:
            PromptError: no variant for ``language`` and no fallback.
        """
        variant = self.own_variant(language)
        if variant is not None:
            return variant
        if self.fallback is None:
            raise PromptError(f"{self.prompt.path}: no variant for language {language!r} and no fallback_language")
        if count:
            self.fallbacks[normalize_language(language) or UNKNOWN_LANGUAGE] += 1
        return self.prompt.variants[self.fallback]

    def check(self, languages: Iterable[str | None]) -> None:
        """Raise :class:`PromptError` naming every language (with its document count) that has no variant,
        when there is no fallback; with a fallback, nothing to check."""
        if self.fallback is not None:
            return
        missing = Counter(
            normalize_language(lang) or UNKNOWN_LANGUAGE for lang in languages if not self.own_variant(lang)
        )
        if missing:
            listed = ", ".join(f"{lang} ({n} documents)" for lang, n in sorted(missing.items()))
            raise PromptError(
                f"{self.prompt.path}: no variant for {listed} and fallback_language is null; add variants "
                "(mlfilter translate-prompt) or set fallback_language"
            )


def default_score_pattern(score_prefix: str, labels: Sequence[str]) -> str:
    """A case-insensitive pattern for ``<prefix> <label>``, tolerant of Markdown bold and spacing."""
    marker = score_prefix.strip().rstrip(":").strip()
    numeric = all(re.fullmatch(r"-?\d+", label) for label in labels)
    value = r"(-?\d+(?:[.,]\d+)?)" if numeric else r"([^\W_]+)"
    return rf"(?i){re.escape(marker)}\s*\**\s*:?\s*\**\s*{value}"


def _text(data: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise PromptError(f"{where}: '{key}' must be a string, got {type(value).__name__}")
    return value


def load_prompt(path: str | Path) -> PromptFile:
    """Load and validate a prompt file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PromptError(f"{path}: prompt file not found") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PromptError(f"{path}: not valid UTF-8 YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PromptError(f"{path}: expected a mapping with 'labels', 'score_prefix' and 'languages'")
    labels = data.get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(v, str | int) for v in labels):
        raise PromptError(f"{path}: labels: expected a list of at least two labels, e.g. ['0', '1', '2']")
    label_texts = tuple(str(v).strip() for v in labels)
    if len(set(label_texts)) != len(label_texts) or not all(label_texts):
        raise PromptError(f"{path}: labels: labels must be distinct and non-empty, got {list(label_texts)}")
    score_prefix = _text(data, "score_prefix", str(path))
    if not score_prefix.strip():
        raise PromptError(f"{path}: score_prefix: must not be empty")
    pattern = _text(data, "score_pattern", str(path), required=False) or default_score_pattern(
        score_prefix, label_texts
    )
    try:
        if re.compile(pattern).groups < 1:
            raise PromptError(f"{path}: score_pattern: needs one capturing group around the score")
    except re.error as exc:
        raise PromptError(f"{path}: score_pattern: not a valid regular expression: {exc}") from None
    languages = data.get("languages")
    if not isinstance(languages, dict) or not languages:
        raise PromptError(f"{path}: languages: expected a mapping of language code → {{system, user}}")
    variants = {}
    for code, spec in languages.items():
        where = f"{path}: languages.{code}"
        if not isinstance(spec, dict):
            raise PromptError(f"{where}: expected a mapping with 'system' and 'user'")
        user = _text(spec, "user", where)
        if user.count(PLACEHOLDER) != 1:
            raise PromptError(f"{where}.user: must contain the placeholder {PLACEHOLDER} exactly once")
        before, after = user.split(PLACEHOLDER)
        normalized = normalize_language(str(code)) or str(code)
        variants[normalized] = PromptVariant(normalized, _text(spec, "system", where, required=False), before, after)
    default_language = normalize_language(str(data.get("default_language", "en"))) or "en"
    if default_language not in variants:
        raise PromptError(f"{path}: default_language: {default_language!r} has no entry under languages")
    unreviewed = data.get("unreviewed_languages") or []
    if not isinstance(unreviewed, list):
        raise PromptError(f"{path}: unreviewed_languages: expected a list of language codes")
    unreviewed_codes = tuple(normalize_language(str(code)) or str(code) for code in unreviewed)
    unknown = sorted(set(unreviewed_codes) - set(variants))
    if unknown:
        raise PromptError(f"{path}: unreviewed_languages: {unknown} have no entry under languages")
    return PromptFile(
        path=str(path),
        name=path.stem,
        sha256=hashlib.sha256(raw).hexdigest(),
        labels=label_texts,
        score_prefix=score_prefix,
        score_pattern=pattern,
        default_language=default_language,
        variants=variants,
        unreviewed=unreviewed_codes,
    )
