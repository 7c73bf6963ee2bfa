"""``mlfilter translate-prompt`` against a real HTTP server on 127.0.0.1 that fakes a translating LLM and DeepL."""

from __future__ import annotations

import asyncio
import csv
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from mlfilter.annotation.backends.openai_client import OpenAIClient
from mlfilter.annotation.prompts import PLACEHOLDER, load_prompt
from mlfilter.annotation.translation import (
    OpenAITranslator,
    TranslationError,
    deepl_translator,
    protect,
    translate_prompt,
)
from mlfilter.cli import main

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "prompts" / "educational_v2.yaml"
_TAG_OR_WORD = re.compile(r'(<x id="\d+"\s*/>)|([^\W\d_]+)')


def fake_translation(text: str, target: str) -> str:
    """A deterministic stand-in for a translation: every word outside the tags reversed, tags kept."""
    return f"[{target}] " + _TAG_OR_WORD.sub(lambda m: m.group(1) or m.group(2)[::-1], text)


class TranslationServer:
    """Chat completions that 'translate' (see :func:`fake_translation`) and a DeepL ``/v2/translate``.

    ``mangle``: target language name → (tag, replacement) applied to the reply, as a model that rewrites
    ``<x id="7"/>`` into ``{dokument}`` would do.
    """

    def __init__(self) -> None:
        self.mangle: dict[str, tuple[str, str]] = {}
        self.deepl_requests: list[dict] = []
        self.chat_requests = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.chat_requests += 1
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        target = re.search(r"into (.+?)\. ", system).group(1)  # type: ignore[union-attr]
        reply = fake_translation(user, target)
        if target in self.mangle:
            reply = reply.replace(*self.mangle[target])
        message = {"role": "assistant", "content": reply}
        return web.json_response({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})

    async def _deepl(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "DeepL-Auth-Key test-key:fx":
            return web.Response(status=403, text='{"message": "Wrong key"}')
        body = await request.json()
        self.deepl_requests.append(body)
        if body["target_lang"] == "XX":
            return web.Response(status=400, text='{"message": "Value for \'target_lang\' not supported."}')
        texts = [fake_translation(text, body["target_lang"]) for text in body["text"]]
        return web.json_response({"translations": [{"detected_source_language": "EN", "text": t} for t in texts]})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v2/translate", self._deepl)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> TranslationServer:
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[TranslationServer]:
    with TranslationServer() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{fake.port}/v1")
        monkeypatch.delenv("DEEPL_API_KEY", raising=False)
        yield fake


def placeholder_tag() -> str:
    prompt = load_prompt(SOURCE)
    variant = prompt.variants["en"]
    spans = protect(variant.user_before + PLACEHOLDER + variant.user_after, prompt).spans
    return f'<x id="{spans.index(PLACEHOLDER)}"/>'


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_translation_keeps_placeholder_marker_and_labels(server: TranslationServer, tmp_path: Path) -> None:
    # Translating v2 into languages it lacks; the new file keeps v2's variants and adds the translations.
    output = tmp_path / "educational_v3.yaml"
    code = main(["translate-prompt", str(SOURCE), "--languages", "lb", "sq", "--output", str(output), "--model", "m"])
    assert code == 0
    prompt = load_prompt(output)
    source = load_prompt(SOURCE)
    assert set(prompt.variants) == set(source.variants) | {"lb", "sq"}
    assert {"lb", "sq"} <= set(prompt.unreviewed)
    assert prompt.variants["de"] == source.variants["de"], "existing variants are copied unchanged"
    english = source.variants["en"]
    for language in ("lb", "sq"):
        variant = prompt.variants[language]
        user = variant.messages("THE DOCUMENT")[-1]["content"]
        assert user.count("THE DOCUMENT") == 1
        assert '"Educational score: <points>"' in user
        assert user.startswith(f"[{language}] ") and "egduJ" in user, "the text itself went through the translator"
        assert variant.system == fake_translation(english.system, language)
    assert server.chat_requests == 4  # system and user, per language
    sheet = rows(tmp_path / "educational_v3.yaml.review.csv")
    assert [(r["language"], r["part"], r["status"]) for r in sheet] == [
        ("lb", "system", "ok"),
        ("lb", "user", "ok"),
        ("sq", "system", "ok"),
        ("sq", "user", "ok"),
    ]
    assert sheet[1]["source"] == english.user_before + PLACEHOLDER + english.user_after
    assert sheet[1]["translation"] == prompt.variants["lb"].user_before + PLACEHOLDER + prompt.variants["lb"].user_after


def test_a_reply_that_mangles_the_placeholder_is_refused(
    server: TranslationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.mangle["sq"] = (placeholder_tag(), "{dokument}")
    output = tmp_path / "educational_v3.yaml"
    code = main(["translate-prompt", str(SOURCE), "--languages", "lb", "sq", "--output", str(output), "--model", "m"])
    assert code == 1
    assert "refused sq: user: '{document}' missing or repeated" in capsys.readouterr().err
    prompt = load_prompt(output)
    assert "lb" in prompt.variants and "sq" not in prompt.variants
    statuses = {(r["language"], r["part"]): r["status"] for r in rows(Path(f"{output}.review.csv"))}
    assert statuses[("sq", "user")].startswith("refused: user: '{document}' missing")
    assert statuses[("lb", "user")] == "ok"


def test_a_duplicated_tag_is_refused_and_nothing_is_written_when_all_fail(
    server: TranslationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = placeholder_tag()
    server.mangle["sq"] = (tag, tag + tag)
    output = tmp_path / "educational_v3.yaml"
    code = main(["translate-prompt", str(SOURCE), "--languages", "sq", "--output", str(output), "--model", "m"])
    assert code == 2
    assert "no language could be translated: sq: user: '{document}' missing or repeated" in capsys.readouterr().err
    assert not output.exists()
    assert rows(Path(f"{output}.review.csv"))[1]["status"].startswith("refused")


def test_deepl_is_used_when_its_key_is_set(
    server: TranslationServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPL_API_KEY", "test-key:fx")
    monkeypatch.setenv("DEEPL_API_URL", f"http://127.0.0.1:{server.port}/v2/translate")
    output = tmp_path / "adult_v3.yaml"
    source = ROOT / "prompts" / "adult_v1.yaml"
    assert main(["translate-prompt", str(source), "--languages", "no", "pt", "--output", str(output)]) == 0
    assert server.chat_requests == 0
    assert [r["target_lang"] for r in server.deepl_requests] == ["NB", "PT-PT"]
    assert all(r["tag_handling"] == "xml" and r["ignore_tags"] == ["x"] for r in server.deepl_requests)
    prompt = load_prompt(output)
    assert prompt.variants["no"].messages("D")[-1]["content"].count('"Adult content score: <level>"') == 1
    assert prompt.unreviewed == ("no", "pt")


def test_deepl_errors_name_the_language(server: TranslationServer, tmp_path: Path) -> None:
    env = {"DEEPL_API_KEY": "test-key:fx", "DEEPL_API_URL": f"http://127.0.0.1:{server.port}/v2/translate"}
    translator = deepl_translator(env)
    assert translator is not None
    with pytest.raises(TranslationError, match=r"DeepL refused the xx translation: HTTP 400: .*not supported"):
        translate_prompt(SOURCE, ["xx"], tmp_path / "p.yaml", translator)
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize(
    ("languages", "message"),
    [(["de"], "already has variants for ['de']"), ([""], "give at least one language code")],
)
def test_bad_languages_are_refused_before_any_request(
    server: TranslationServer, tmp_path: Path, languages: list[str], message: str
) -> None:
    translator = OpenAITranslator(OpenAIClient([f"http://127.0.0.1:{server.port}/v1"], None), "m")
    with pytest.raises(TranslationError, match=re.escape(message)):
        translate_prompt(SOURCE, languages, tmp_path / "p.yaml", translator)
    assert server.chat_requests == 0


def test_the_output_must_be_a_new_file(
    server: TranslationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "educational_v3.yaml"
    output.write_text("taken", encoding="utf-8")
    assert main(["translate-prompt", str(SOURCE), "--languages", "sq", "--output", str(output), "--model", "m"]) == 2
    assert "a new prompt version is a new file" in capsys.readouterr().err
    assert output.read_text(encoding="utf-8") == "taken"
