"""Language routing: each document gets its own language's prompt variant, else the fallback (counted)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from mlfilter.annotation.prompts import LanguageRouter, PromptError, load_prompt
from mlfilter.annotation.runner import Annotator, annotate
from mlfilter.documents import read_documents
from mlfilter.params import TaskParams
from tests.annotation.conftest import ROOT, fast_params, read_output
from tests.openai_server import FakeOpenAIServer, body_digest

V2 = ROOT / "prompts" / "educational_v2.yaml"
TASK = TaskParams("educational", str(V2), 6, 3)
# (id, language): an own variant (de, ga, nb → no, pt-BR → pt), none (ko, ja), and no language at all.
DOCS = [
    ("d1", "de"),
    ("d2", "ko"),
    ("d3", "ga"),
    ("d4", "nb"),
    ("d5", "ko"),
    ("d6", None),
    ("d7", "ja"),
    ("d8", "pt-BR"),
]


def documents(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    lines = []
    for doc_id, language in DOCS:
        record = {
            "id": doc_id,
            "text": f"Photosynthesis turns light into chemical energy ({doc_id}).",
            "language": language,
        }
        lines.append(json.dumps({k: v for k, v in record.items() if v is not None}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_router_uses_the_own_variant_else_the_fallback_and_counts_it() -> None:
    router = LanguageRouter(load_prompt(V2))
    assert router.variant("deu_Latn").language == "de"
    assert router.variant("nn").language == "no"
    assert router.variant("ko").language == "en"
    assert router.variant("KO").language == "en"
    assert router.variant(None).language == "en"
    assert router.variant("ko", count=False).language == "en"
    assert router.fallbacks == {"ko": 2, "unknown": 1}


def test_router_without_fallback_names_every_missing_language() -> None:
    router = LanguageRouter(load_prompt(V2), None)
    assert router.variant("fi").language == "fi"
    with pytest.raises(PromptError, match="no variant for language 'ko' and no fallback_language"):
        router.variant("ko")
    with pytest.raises(PromptError, match=r"no variant for ja \(1 documents\), ko \(2 documents\) and fallback"):
        router.check(["de", "ko", "ja", "ko", "sv"])
    router.check(["de", "sv", "nb"])


def test_a_fallback_language_without_a_variant_is_refused() -> None:
    with pytest.raises(PromptError, match="fallback_language 'ko' has no variant"):
        LanguageRouter(load_prompt(V2), "ko")


def test_annotating_routes_each_document_and_reports_the_fallbacks(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    report = annotate(
        "a", fast_params(), (TASK,), [str(documents(tmp_path))], tmp_path / "out", tmp_path / "a.json",
        cache=str(tmp_path / "cache.sqlite"), env_file=None,
    )  # fmt: skip
    records = {r["id"]: r["prompt"]["educational"]["language"] for r in read_output(tmp_path / "out")}
    assert records == {"d1": "de", "d2": "en", "d3": "ga", "d4": "no", "d5": "en", "d6": "en", "d7": "en", "d8": "pt"}
    assert report["prompt_fallbacks"] == {"educational": {"ja": 1, "ko": 2, "unknown": 1}}
    assert json.loads((tmp_path / "a.json").read_text())["prompt_fallbacks"] == report["prompt_fallbacks"]
    # What was sent: one request per document, whose system message is the routed variant's.
    prompt = load_prompt(V2)
    annotator = Annotator("a", fast_params(), (TASK,))
    sent = {}
    for _, document in read_documents([str(tmp_path / "docs.jsonl")]):
        (request,) = annotator.plan(document, count=False).tasks[0].requests
        sent[body_digest(request.payload)] = orjson.loads(request.payload)["messages"][0]["content"]
        assert sent[body_digest(request.payload)] == prompt.variants[records[document.id]].system
    assert set(server.counts()) == set(sent)
    assert annotator.fallback_counts() == {"educational": {}}


def test_without_fallback_a_language_without_variant_fails_before_any_request(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    with pytest.raises(PromptError, match=r"no variant for ja \(1 documents\), ko \(2 documents\), unknown \(1"):
        annotate(
            "a", fast_params(fallback_language=None), (TASK,), [str(documents(tmp_path))], tmp_path / "out",
            tmp_path / "a.json", cache=str(tmp_path / "cache.sqlite"), env_file=None,
        )  # fmt: skip
    assert server.request_count == 0
    assert not (tmp_path / "out").exists()
