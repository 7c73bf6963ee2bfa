"""The encoder compiled by TorchInductor (``filter.scoring.compile: true``): the same model, fused kernels.

``torch.compile`` with frozen weights (constants folded, weights pre-packed for MKL), the query, key and value
projections concatenated into one matrix product, and the elementwise work (bias, GELU, residual adds, layer
norms, pooling) fused into a few generated C++ loops. The matrix products stay MKL's and attention stays
PyTorch's fused SDPA kernel, so scores match eager float32 to rounding (``benchmarks/bench_filter_engine.py``
prints the largest difference; ``tests/filtering/test_compiled.py`` checks it stays under 1e-4). In float32 on a
CPU those two kernels are about nine tenths of the time, and the compiled encoder measured no faster than the
eager one (the bench's ``cpu`` part prints both, and the time of the two kernels alone).

Shapes are dynamic (one graph serves every batch width and row count), so a run compiles once, plus once for a
batch of a single row (a size PyTorch specialises), each about 20–35 CPU-seconds on all-MiniLM-L6-v2.
Inductor writes C++ and needs a C++ compiler at run time: without one, or when compiling fails, scoring goes
on with the eager model and the reason is logged.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger("mlfilter.filter")

#: TorchInductor options: weights frozen into the graph (needs inference mode) and linears sharing an input
#: (query, key, value) concatenated into one matrix product.
INDUCTOR_OPTIONS = {"freezing": True, "cpp.enable_concat_linear": True}

Embed = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def unavailable_reason() -> str | None:
    """Why TorchInductor cannot compile here (no C++ compiler on the PATH), or None."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        compiler = get_cpp_compiler()
    except Exception as exc:  # any failure to find a compiler means: run eagerly
        return f"TorchInductor found no C++ compiler ({type(exc).__name__}: {exc})"
    if shutil.which(compiler) is None:
        return f"TorchInductor's C++ compiler {compiler!r} is not on the PATH"
    return None


class CompiledEmbed:
    """``model.embed(input_ids, attention_mask)`` → pooled embeddings ``[rows, embedding_size]``, compiled on
    first use; any failure to compile logs its reason and leaves :attr:`failed` set, and the batch (and every
    later one) runs on the eager model. Call under ``torch.inference_mode`` (frozen weights need it)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.failed: str | None = unavailable_reason()
        self._compiled: Embed | None = None
        if self.failed is not None:
            log.warning("filter: scoring with the eager model: %s", self.failed)
        else:
            self._compiled = torch.compile(model.embed, dynamic=True, options=INDUCTOR_OPTIONS)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self._compiled is not None:
            try:
                return self._compiled(input_ids, attention_mask)
            except Exception as exc:  # a compiler failure of any kind falls back to eager
                self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                self._compiled = None
                log.warning("filter: compiling the encoder failed (%s); scoring with the eager model", self.failed)
        return self.model.embed(input_ids, attention_mask)
