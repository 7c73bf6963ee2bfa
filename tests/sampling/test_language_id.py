"""The lingua language-ID backend on the close pairs, and per-language confidence histograms in the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlfilter.errors import MlfilterError
from mlfilter.sampling.langid import CONFIDENCE_BINS, confidence_bin, language_identifier
from mlfilter.sampling.pipeline import run_sample
from tests.sampling.conftest import make_params
from tests.sampling.helpers import WarcFile, html_page, multilingual_warc, texts

CLOSE_PAIRS = {
    "cs": "Včera večer jsme šli s kamarády do kina a potom jsme seděli v hospodě. Film byl docela dlouhý, ale "
    "všem se líbil, hlavně kvůli hudbě a krásným záběrům hor.",
    "sk": "Včera večer sme išli s kamarátmi do kina a potom sme sedeli v krčme. Film bol dosť dlhý, ale všetkým "
    "sa páčil, hlavne kvôli hudbe a krásnym záberom hôr.",
    "ca": "Ahir al vespre vam anar al cinema amb els amics i després vam seure en un bar. La pel·lícula era "
    "força llarga, però ens va agradar a tots, sobretot per la música.",
    "es": "Ayer por la tarde fuimos al cine con los amigos y después nos sentamos en un bar. La película era "
    "bastante larga, pero nos gustó a todos, sobre todo por la música.",
    "pt": "Ontem à noite fomos ao cinema com os amigos e depois sentámo-nos num café. O filme era bastante "
    "longo, mas todos gostámos, sobretudo por causa da música.",
    "da": "I går aftes gik vi i biografen med vennerne, og bagefter sad vi på en café. Filmen var ret lang, "
    "men vi kunne alle lide den, især på grund af musikken og de smukke billeder af bjergene.",
    "nb": "I går kveld gikk vi på kino med vennene våre, og etterpå satt vi på en kafé. Filmen var ganske "
    "lang, men alle likte den, særlig på grunn av musikken og de vakre bildene av fjellene.",
    "hr": "Jučer navečer išli smo s prijateljima u kino, a poslije smo sjedili u kafiću. Film je bio prilično "
    "dug, ali svima se svidio, ponajviše zbog glazbe i prekrasnih prizora planina.",
    "sr": "Јуче увече смо ишли са пријатељима у биоскоп, а после смо седели у кафићу. Филм је био прилично "
    "дугачак, али свима се допао, највише због музике и прелепих призора планина.",
}


@pytest.fixture(scope="module")
def lingua() -> object:
    pytest.importorskip("lingua", reason="lingua-language-detector is not installed (pip install 'mlfilter[lingua]')")
    return language_identifier("lingua")


@pytest.mark.parametrize("language", sorted(CLOSE_PAIRS))
def test_lingua_tells_the_close_pairs_apart(lingua, language: str) -> None:  # type: ignore[no-untyped-def]
    guess = lingua.identify(CLOSE_PAIRS[language])
    assert guess.language == language
    assert 0 < guess.score <= 1


def test_lingua_knows_the_pairs_and_names_what_it_does_not_know(lingua) -> None:  # type: ignore[no-untyped-def]
    assert {"bs", "hr", "sr", "nb", "nn", "da", "ca", "es", "cs", "sk", "pt", "ga", "is", "eu"} <= lingua.languages
    with pytest.raises(MlfilterError, match="lingua does not identify gl, mt"):
        lingua.check_supported(("pt", "gl", "mt"))
    assert lingua.identify("1234 5678 !!!").language == "und"


@pytest.mark.parametrize(("score", "expected"), [(0.0, 0), (0.05, 0), (0.1, 1), (0.55, 5), (0.999, 9), (1.0, 9)])
def test_confidence_bins(score: float, expected: int) -> None:
    assert confidence_bin(score) == expected


def test_the_report_holds_a_confidence_histogram_per_identified_language(tmp_path: Path) -> None:
    warc = multilingual_warc(tmp_path / "a.warc.gz")
    mixed = WarcFile()  # pages half in one language, half in another: the identifier is unsure of them
    for i, (first, second) in enumerate([("en", "de"), ("es", "en"), ("de", "es")]):
        text = texts(first)[i][:300] + " " + texts(second)[i][:300]
        mixed.response(f"https://mixed.example.org/{i}.html", html_page(f"Mixed {i}", text, "utf-8"))
    params = make_params(tmp_path, str(warc), str(mixed.write(tmp_path / "m.warc.gz")))
    report = run_sample(params, 13, tmp_path / "out", tmp_path / "out.json")
    confidence = report["language_confidence"]
    assert confidence["backend"] == "py3langid"
    assert len(confidence["bins"]) == CONFIDENCE_BINS + 1 and confidence["bins"][-1] == 1.0
    assert set(confidence["documents"]) == {lang for lang, entry in report["languages"].items() if entry["seen"]}
    for language, counts in confidence["documents"].items():
        assert len(counts) == CONFIDENCE_BINS
        assert sum(counts) == report["languages"][language]["seen"]
    # min_language_score 0.9 drops exactly the documents of the bins below 0.9.
    strict = dataclasses.replace(params, min_language_score=0.9, work_dir=str(tmp_path / "w2"))
    below = sum(sum(counts[:9]) for counts in confidence["documents"].values())
    strict_report = run_sample(strict, 13, tmp_path / "strict", tmp_path / "strict.json")
    assert strict_report["records"]["dropped"].get("low_language_score", 0) == below > 0
