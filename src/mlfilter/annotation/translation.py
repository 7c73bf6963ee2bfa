"""Translate a prompt file into other languages, keeping what the parser and the renderer rely on.

Protected spans — the document placeholder ``{document}``, the reply marker (the prompt's
``score_prefix``, e.g. ``Educational score:``), tag-like tokens such as ``<document>`` or
``<points>``, and every label as a whole token — are replaced by numbered empty tags
``<x id="N"/>`` before translation and put back afterwards, as the original tool did with
DeepL's ``ignore_tags``. A translation in which any tag is missing, repeated or invented is
refused: it never reaches the new prompt file.

Two translators: any OpenAI-compatible server, through the same :class:`OpenAIClient` as
annotation (``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``), or DeepL's API when ``DEEPL_API_KEY`` is
set (``tag_handling: xml``, ``ignore_tags: [x]``; ``DEEPL_API_URL`` overrides the endpoint).
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson
import yaml

from mlfilter.annotation.backends.openai_client import OpenAIClient, RequestFailed
from mlfilter.annotation.prompts import PLACEHOLDER, PromptError, PromptFile, load_prompt, normalize_language
from mlfilter.atomic import atomic_open, atomic_path
from mlfilter.errors import MlfilterError

_TAG = re.compile(r'<x id="(\d+)"\s*/>')
DEEPL_FREE_URL = "https://api-free.deepl.com/v2/translate"
DEEPL_PRO_URL = "https://api.deepl.com/v2/translate"
#: Our codes → DeepL target codes where they differ (DeepL wants a variant for en and pt, ``nb`` for Norwegian).
_DEEPL_TARGETS = {"en": "EN-GB", "pt": "PT-PT", "no": "NB"}

#: English names for the languages of the shipped prompts, so the model is told a name, not a code.
LANGUAGE_NAMES = {
    "bg": "Bulgarian",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "eu": "Basque",
    "fi": "Finnish",
    "fr": "French",
    "ga": "Irish",
    "gl": "Galician",
    "hr": "Croatian",
    "hu": "Hungarian",
    "is": "Icelandic",
    "it": "Italian",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mt": "Maltese",
    "nl": "Dutch",
    "no": "Norwegian (Bokmål)",
    "pl": "Polish",
    "pt": "European Portuguese",
    "ro": "Romanian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sr": "Serbian (Cyrillic script)",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
}

SYSTEM_INSTRUCTION = (
    "You are a professional translator. Translate the user's text from {source} into {target}. "
    'The text contains empty tags like <x id="0"/>: copy every tag exactly once, unchanged, to the place '
    "where it belongs in the translation. Keep line breaks, numbering and punctuation structure. "
    "Reply with the translation only, without comments."
)


class TranslationError(MlfilterError):
    """Translation cannot start or cannot be written (bad arguments, no translator, no usable output)."""


@dataclass(frozen=True)
class Protected:
    """A text with its protected spans replaced by ``<x id="N"/>`` tags; ``spans[N]`` is the original."""

    text: str
    spans: tuple[str, ...]

    def restore(self, translated: str) -> str:
        """Put the spans back into a translation.

        Raises:
            ValueError: a tag is missing, repeated or unknown; the message lists the spans that did not survive.
        """
        found = Counter(int(m.group(1)) for m in _TAG.finditer(translated))
        missing = [self.spans[i] for i in range(len(self.spans)) if found[i] != 1]
        unknown = sorted(i for i in found if i >= len(self.spans))
        if missing or unknown:
            parts = [f"{span!r} missing or repeated" for span in missing]
            parts += [f'unknown tag <x id="{i}"/>' for i in unknown]
            raise ValueError("; ".join(parts))
        return _TAG.sub(lambda m: self.spans[int(m.group(1))], translated)


def protect(text: str, prompt: PromptFile) -> Protected:
    """Replace the placeholder, reply marker, tag-like tokens and labels in ``text`` by numbered tags."""
    marker = prompt.score_prefix.strip()
    alternatives = [re.escape(PLACEHOLDER), re.escape(marker), r"<[^<>\n]+>"]
    alternatives += [rf"(?<![\w.]){re.escape(label)}(?![\w])" for label in sorted(prompt.labels, key=len, reverse=True)]
    pattern = re.compile("|".join(alternatives))
    spans: list[str] = []

    def tag(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f'<x id="{len(spans) - 1}"/>'

    return Protected(pattern.sub(tag, text), tuple(spans))


class Translator(Protocol):
    """Translates texts (with ``<x id="N"/>`` tags to keep) from one language into another."""

    name: str

    async def translate(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """One translation per text, in order."""
        ...


def _language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


@dataclass
class OpenAITranslator:
    """Translation by a chat model on an OpenAI-compatible server (temperature 0, one request per text)."""

    client: OpenAIClient
    model: str
    max_tokens: int = 4096
    name: str = "openai"

    async def translate(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """One chat request per text; the reply's message content is the translation."""
        system = SYSTEM_INSTRUCTION.format(source=_language_name(source), target=_language_name(target))

        async def one(text: str) -> str:
            body = {
                "model": self.model,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}],
                "temperature": 0.0,
                "max_tokens": self.max_tokens,
            }
            return await self.client.post("/chat/completions", orjson.dumps(body), _chat_content)

        async with self.client:
            return list(await asyncio.gather(*(one(text) for text in texts)))


def _chat_content(data: Any) -> str:
    content = data["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise TypeError("reply content is not a string")
    return content.strip()


@dataclass
class DeepLTranslator:
    """DeepL's ``/v2/translate`` with XML tag handling, so the ``x`` tags pass through untouched."""

    api_key: str
    url: str
    timeout_s: float = 120.0
    name: str = "deepl"

    async def translate(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """One request for all texts; HTTP errors raise :class:`TranslationError` with DeepL's reason."""
        body = {
            "text": list(texts),
            "source_lang": source.upper(),
            "target_lang": _DEEPL_TARGETS.get(target, target.upper()),
            "tag_handling": "xml",
            "ignore_tags": ["x"],
            "preserve_formatting": True,
        }
        headers = {"Authorization": f"DeepL-Auth-Key {self.api_key}", "Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(self.url, data=orjson.dumps(body), headers=headers) as response,
        ):
            payload = await response.read()
            if response.status != 200:
                reason = payload.decode("utf-8", "replace")[:300]
                raise TranslationError(f"DeepL refused the {target} translation: HTTP {response.status}: {reason}")
        return [item["text"] for item in orjson.loads(payload)["translations"]]


def deepl_translator(env: Mapping[str, str]) -> DeepLTranslator | None:
    """A DeepL translator when ``DEEPL_API_KEY`` is set (free keys end in ``:fx``), else None."""
    key = env.get("DEEPL_API_KEY", "")
    if not key:
        return None
    default = DEEPL_FREE_URL if key.endswith(":fx") else DEEPL_PRO_URL
    return DeepLTranslator(key, env.get("DEEPL_API_URL") or default)


@dataclass
class TranslationResult:
    """What :func:`translate_prompt` did: languages written, refused (language → reason), the sheet rows."""

    written: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, str]] = field(default_factory=list)


async def translate_variants(
    prompt: PromptFile, languages: Sequence[str], translator: Translator, source: str
) -> tuple[dict[str, dict[str, str]], TranslationResult]:
    """Translate the ``source`` variant into each language; ``({language: {system, user}}, result)``.

    A language whose translation lost, repeated or invented a protected span, or whose request failed,
    is refused (named in ``result.refused``) and left out of the returned variants.
    """
    variant = prompt.variants[source]
    parts = {"system": variant.system, "user": variant.user_before + PLACEHOLDER + variant.user_after}
    protected = {key: protect(text, prompt) for key, text in parts.items() if text}
    result = TranslationResult()
    translated: dict[str, dict[str, str]] = {}
    for language in languages:
        try:
            outputs = await translator.translate([p.text for p in protected.values()], source, language)
        except RequestFailed as exc:
            result.refused[language] = f"request failed: {exc}"
            continue
        entry: dict[str, str] = {}
        problems = []
        for (key, original), output in zip(protected.items(), outputs, strict=True):
            try:
                entry[key] = original.restore(output)
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
                entry[key] = output
            result.rows.append({"language": language, "part": key, "source": parts[key], "translation": entry[key]})
        if problems:
            result.refused[language] = "; ".join(problems)
        else:
            translated[language] = entry
            result.written.append(language)
    for row in result.rows:
        row["status"] = f"refused: {result.refused[row['language']]}" if row["language"] in result.refused else "ok"
    return translated, result


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as ``|-`` blocks, as in the hand-written prompt files."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str_representer)


def new_prompt_document(
    source_path: Path, prompt: PromptFile, translated: Mapping[str, Mapping[str, str]], translator: str
) -> dict[str, Any]:
    """The content of the new prompt version: the source file's keys and variants plus the translations,
    which are listed under ``unreviewed_languages`` until a native speaker reviews them."""
    data = yaml.safe_load(source_path.read_text(encoding="utf-8"))
    version = data.get("version")
    if isinstance(version, int):
        data["version"] = version + 1
    languages = dict(data["languages"])
    languages.update({code: dict(entry) for code, entry in translated.items()})
    data["languages"] = languages
    unreviewed = [str(code) for code in data.get("unreviewed_languages") or []]
    data["unreviewed_languages"] = [*unreviewed, *(code for code in translated if code not in unreviewed)]
    data["translated_by"] = {code: translator for code in translated}
    return data


def write_prompt_file(path: Path, data: Mapping[str, Any], header: str) -> None:
    """Write a prompt file atomically, loading it back (with every check) before it takes its final name.

    Raises:
        PromptError: the written file does not load (it is not left behind).
    """
    text = header + yaml.dump(dict(data), Dumper=_LiteralDumper, allow_unicode=True, sort_keys=False, width=10_000)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        load_prompt(tmp)


def write_review_sheet(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """A CSV (UTF-8 with BOM, for spreadsheets) with language, part, source, translation and status columns."""
    with atomic_open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["language", "part", "source", "translation", "status"])
        writer.writeheader()
        writer.writerows(rows)


def translate_prompt(
    source_path: str | Path,
    languages: Sequence[str],
    output: str | Path,
    translator: Translator,
    *,
    source_language: str | None = None,
    review_sheet: str | Path | None = None,
) -> TranslationResult:
    """Translate ``source_path`` into ``languages`` and write the new prompt version ``output``.

    The review sheet (default ``<output>.review.csv``) lists source and translation side by side for every
    language, refused ones included. ``output`` is written only if at least one language succeeded.

    Raises:
        TranslationError: ``output`` exists, a language code is empty or already has a variant, the source
            language has none, or no language could be translated.
        PromptError: the source file does not load.
    """
    source_path = Path(source_path)
    output = Path(output)
    if output.exists():
        raise TranslationError(f"{output}: exists; a new prompt version is a new file, never an edit")
    prompt = load_prompt(source_path)
    source = normalize_language(source_language) or prompt.default_language
    if source not in prompt.variants:
        raise TranslationError(f"{source_path}: no variant for the source language {source!r}")
    codes = [normalize_language(code) for code in languages]
    if not codes or not all(codes):
        raise TranslationError("--languages: give at least one language code, e.g. ga mt is")
    existing = sorted({c for c in codes if c in prompt.variants})
    if existing:
        raise TranslationError(f"{source_path}: already has variants for {existing}; translate into others")
    translated, result = asyncio.run(translate_variants(prompt, list(dict.fromkeys(codes)), translator, source))
    sheet = Path(review_sheet) if review_sheet else output.with_name(output.name + ".review.csv")
    write_review_sheet(sheet, result.rows)
    if not translated:
        raise TranslationError(
            "no language could be translated: "
            + "; ".join(f"{lang}: {why}" for lang, why in result.refused.items())
            + f" (review sheet: {sheet})"
        )
    header = (
        f"# Translated from {source_path.name} ({source}) by {translator.name}; "
        f"the new languages are unreviewed (see {sheet.name}).\n"
    )
    try:
        write_prompt_file(output, new_prompt_document(source_path, prompt, translated, translator.name), header)
    except PromptError as exc:
        raise TranslationError(f"the translated prompt file does not load: {exc}") from None
    return result
