"""The local backend with the packaged SmolLM2-135M-Instruct, in both score modes.

The tests use float32: bfloat16 (what ``dtype: auto`` picks on CPUs with native support) would
make the batched-against-alone comparison a comparison of rounding noise.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mlfilter.annotation.backends.local import resolve_dtype
from mlfilter.annotation.params import AnnotatorParams, SamplingParams
from mlfilter.annotation.runner import AnnotationRun, Annotator
from mlfilter.annotation.statuses import LENGTH, LOW_LABEL_MASS, NO_LABEL_TOKEN, NO_SCORE, OK, OUT_OF_RANGE
from mlfilter.documents import Document
from tests.annotation.conftest import EDUCATIONAL, output_bytes, read_output

MODEL = "embedded:SmolLM2-135M-Instruct"
TEXTS = [
    ("photo", "en", "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen."),
    ("shop", "en", "Buy cheap shoes now! Free delivery on all orders over 50 euros. Click here."),
    ("gleich", "de", "Eine Gleichung ist eine Aussage, dass zwei Terme gleich sind, zum Beispiel 2 + 3 = 5."),
]


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on 2 cores shared with other test processes, two threads spin against each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "language": lang, "text": t}) + "\n" for i, lang, t in TEXTS))
    return path


def local_params(**overrides) -> AnnotatorParams:
    values = {"backend": "local", "model": MODEL, "max_document_tokens": 64, "batch_size": 2, "dtype": "float32"}
    values.update(overrides)
    return AnnotatorParams(**values)


def test_logprobs_mode(documents: Path, tmp_path: Path, cache_file: Path) -> None:
    annotator = Annotator("smol", local_params(score_mode="logprobs"), (EDUCATIONAL,))
    report = AnnotationRun(annotator, [str(documents)], cache_file).run(tmp_path / "out")
    records = read_output(tmp_path / "out")
    assert [r["id"] for r in records] == ["photo", "shop", "gleich"]
    assert [r["prompt"]["educational"]["language"] for r in records] == ["en", "en", "de"]
    for record in records:
        (distribution,) = record["distribution"]["educational"]
        (score,) = record["scores"]["educational"]
        (status,) = record["status"]["educational"]
        (top_token,) = record["replies"]["educational"]
        mass = record["label_mass"]["educational"][0]
        assert 0 < mass <= 1
        assert record["usage"]["prompt_tokens"] > 100 and record["usage"]["completion_tokens"] == 1
        if top_token.strip() not in {str(label) for label in range(6)}:
            assert status == NO_LABEL_TOKEN and score is None and distribution is None
            continue
        assert status == (OK if mass >= 0.5 else LOW_LABEL_MASS)
        if status == OK:
            assert sum(distribution) == pytest.approx(1, abs=1e-5)
            assert score == pytest.approx(sum(i * p for i, p in enumerate(distribution)), abs=1e-3)
    assert sum(r["status"]["educational"] == [OK] for r in records) >= 2
    assert report["requests"]["sent"] == 3
    again = AnnotationRun(annotator, [str(documents)], cache_file).run(tmp_path / "out")
    assert again["requests"]["sent"] == 0 and again["requests"]["cache_hits"] == 3


def test_generate_mode(documents: Path, tmp_path: Path, cache_file: Path) -> None:
    params = local_params(
        force_reply_prefix=True, n=2, sampling=SamplingParams(temperature=1.0, max_new_tokens=3, seed=5)
    )
    annotator = Annotator("smol", params, (EDUCATIONAL,))
    AnnotationRun(annotator, [str(documents)], cache_file).run(tmp_path / "out")
    for record in read_output(tmp_path / "out"):
        assert len(record["replies"]["educational"]) == 2
        for score, status, reply, finish in zip(
            record["scores"]["educational"],
            record["status"]["educational"],
            record["replies"]["educational"],
            record["finish_reason"]["educational"],
            strict=True,
        ):
            assert isinstance(reply, str) and reply
            assert status in {OK, NO_SCORE, OUT_OF_RANGE, LENGTH}
            assert (score is None) == (status != OK)
            if status == LENGTH:
                assert finish == "length"
                assert reply.strip() not in {str(label) for label in range(6)}, "a lone label after the prefix is whole"
        assert 1 <= record["usage"]["completion_tokens"] <= 6


def test_batched_shared_prefix_rows_match_one_by_one() -> None:
    short = dataclasses.replace(EDUCATIONAL, prompt=str(Path(__file__).with_name("data") / "short_educational.yaml"))
    for mode in ("generate", "logprobs"):
        params = local_params(score_mode=mode, sampling=SamplingParams(temperature=1.0, max_new_tokens=4, seed=3))
        annotator = Annotator("smol", params, (short,))
        backend = annotator.backend
        requests = [r for i, lang, t in TEXTS for r in annotator.plan(Document(i, t, language=lang)).requests()]
        together = dict(zip([r.key for r in requests], backend.run_batch(requests), strict=True))
        for request in requests:
            (alone,) = backend.run_batch([request])
            if mode == "generate":
                assert together[request.key]["text"] == alone["text"]
            else:
                ours = dict(map(tuple, together[request.key]["top_logprobs"]))
                theirs = dict(map(tuple, alone["top_logprobs"]))
                for label in "012345":
                    assert ours[label] == pytest.approx(theirs[label], abs=1e-3)


def test_a_crashed_run_resumes_to_the_same_bytes(documents: Path, tmp_path: Path, monkeypatch) -> None:
    params = local_params(score_mode="logprobs", batch_size=1)
    annotator = Annotator("smol", params, (EDUCATIONAL,))
    AnnotationRun(annotator, [str(documents)], tmp_path / "straight.sqlite").run(tmp_path / "straight")
    backend = annotator.backend
    run_batch = backend.run_batch
    calls = []

    def crash_on_second_batch(batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_batch(batch)

    monkeypatch.setattr(backend, "run_batch", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        AnnotationRun(annotator, [str(documents)], tmp_path / "resumed.sqlite").run(tmp_path / "resumed")
    monkeypatch.setattr(backend, "run_batch", run_batch)
    report = AnnotationRun(annotator, [str(documents)], tmp_path / "resumed.sqlite").run(tmp_path / "resumed")
    assert report["requests"]["cache_hits"] == 1 and report["requests"]["sent"] == 2
    assert output_bytes(tmp_path / "resumed") == output_bytes(tmp_path / "straight")


def test_auto_dtype() -> None:
    assert resolve_dtype("float16", "cpu") == "float16"
    assert resolve_dtype("auto", "cuda:0") == "bfloat16"
    assert resolve_dtype("auto", "cpu") in {"bfloat16", "float32"}
