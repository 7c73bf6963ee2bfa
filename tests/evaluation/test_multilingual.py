"""The English-only offline encoders are named as such when most documents are not English."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
from mlfilter.multilingual import MULTILINGUAL_ENCODERS, english_only_warning, is_english_only, saved_encoder


@pytest.mark.parametrize(
    ("encoder", "english_only"),
    [
        (EMBEDDED_ENCODER, True),
        ("sentence-transformers/all-MiniLM-L6-v2", True),
        ("embedded:SmolLM2-135M-Instruct", True),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", True),
        (*MULTILINGUAL_ENCODERS[:1], False),
        ("Snowflake/snowflake-arctic-embed-m-v2.0", False),
        ("/models/xlm-roberta-large", False),
    ],
)
def test_is_english_only(encoder: str, english_only: bool) -> None:
    assert is_english_only(encoder) is english_only


def test_warning_only_for_mostly_non_english_documents_on_the_english_encoder() -> None:
    folder = resolve_model(EMBEDDED_ENCODER).path
    assert is_english_only(folder)
    message = english_only_warning(folder, ["de", "es", "sr", "en", None, "unknown"])
    assert message is not None and message.startswith("75% of the documents are not English")
    assert all(name in message for name in MULTILINGUAL_ENCODERS)
    assert english_only_warning(folder, ["de", "en", "en"]) is None  # mostly English
    assert english_only_warning(folder, ["de", "en"]) is None  # half is not "mostly"
    assert english_only_warning("FacebookAI/xlm-roberta-base", ["de", "de"]) is None
    assert english_only_warning(folder, [None, "unknown"]) is None  # no known language
    assert english_only_warning(None, ["de"]) is None  # not an encoder model (TF-IDF, fastText)


def test_saved_encoder_reads_the_model_config(model_dir: Path, tmp_path: Path) -> None:
    assert saved_encoder(model_dir) == resolve_model(EMBEDDED_ENCODER).path
    assert saved_encoder(tmp_path) is None
