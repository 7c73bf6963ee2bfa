"""Configs of the original tool's ``score_documents`` command, mapped onto a ``score_documents`` config of ours.

The original (ml_filter by OpenGPT-X / EuroLingua) describes an annotation run in five sections —
``settings`` (model, paths), ``llm_rest_client`` (request and sampling parameters), ``tokenizer``,
``prompt_builder`` and ``document_processor`` — with OmegaConf interpolations (``${settings.model_name}``)
and ``${eval:'...'}`` arithmetic. It applied the tokenizer's chat template itself and posted to
``/v1/completions``; so does the mapped annotator (``api: completions``). ``max_prompt_length`` becomes
``max_document_tokens``: it caps the document's tokens (the original capped the whole prompt, so the
instructions now come on top). Keys that only steered the original implementation are accepted and
ignored with a log line; keys with no equivalent here, and unknown keys, are an error naming the key.
The server URL comes from ``OPENAI_BASE_URL`` (the original's ``--rest_endpoint``), never from the file.

The prompt file (``prompt_builder.prompt_template_file_path``) must be one of ours (labels, score prefix,
languages): the original's prompt files name neither their labels nor their score format.
"""

from __future__ import annotations

import ast
import logging
import operator
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mlfilter.annotation.prompts import load_prompt
from mlfilter.params import ParamsError, convert

logger = logging.getLogger(__name__)

#: The sections that mark a file as an original-tool annotation config.
SECTIONS = ("settings", "llm_rest_client", "tokenizer", "prompt_builder", "document_processor")

#: Original keys that have no effect here, with the reason shown to the user.
IGNORED: dict[str, str] = {
    "settings.num_gpus": "GPUs are the server's setting",
    "llm_rest_client.num_gpus": "GPUs are the server's setting",
    "llm_rest_client.max_tokens": "the model's context length; documents are cut to prompt_builder.max_prompt_length",
    "llm_rest_client.max_pool_maxsize": "connections follow the concurrency",
    "llm_rest_client.verbose": "logging is configured separately",
    "document_processor.queue_size": "requests are sent asynchronously",
    "document_processor.num_processes": "requests are sent asynchronously; concurrency sets how many are in flight",
}

#: Original keys → keys of our ``annotator`` entry (dotted for nested ones).
RENAMED: dict[str, str] = {
    "llm_rest_client.model_name": "model",
    "llm_rest_client.max_pool_connections": "concurrency",
    "llm_rest_client.max_retries": "max_retries",
    "llm_rest_client.backoff_factor": "backoff_initial_s",
    "llm_rest_client.timeout": "timeout_s",
    "llm_rest_client.max_new_tokens": "sampling.max_new_tokens",
    "llm_rest_client.sampling_params.max_tokens": "sampling.max_new_tokens",
    "llm_rest_client.sampling_params.temperature": "sampling.temperature",
    "llm_rest_client.sampling_params.top_p": "sampling.top_p",
    "llm_rest_client.sampling_params.seed": "sampling.seed",
    "llm_rest_client.sampling_params.n": "n",
    "tokenizer.pretrained_model_name_or_path": "tokenizer",
    "tokenizer.add_generation_prompt": "add_generation_prompt",
    "prompt_builder.max_prompt_length": "max_document_tokens",
}

#: Keys read by this module itself (paths, task, fields, and fallbacks for interpolated values).
HANDLED = {
    "settings.model_name",
    "settings.tokenizer_name_or_path",
    "settings.paths.raw_data_file_paths",
    "settings.paths.output_directory_path",
    "settings.paths.prompt_template_file_path",
    "settings.paths.start_indexes",
    "tokenizer.special_tokens",
    "prompt_builder.prompt_template_file_path",
    "document_processor.output_directory_path",
    "document_processor.score_metric_name",
    "document_processor.strings_to_remove",
    "document_processor.jq_language_pattern",
    "document_processor.document_id_column",
}

#: Keys whose values are passed through to the server (vLLM/TGI sampling parameters).
_PASSTHROUGH = "llm_rest_client.sampling_params."
_JQ_FIELD = re.compile(r"^\.([A-Za-z_][A-Za-z0-9_]*)$")
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.USub: operator.neg,
}


def arithmetic(expression: str) -> int | float:
    """The value of ``${eval:'...'}`` in the original configs: numbers with ``+ - * / //`` only.

    Raises:
        ValueError: anything else (the original ran Python's ``eval``; this never runs code).
    """

    def value(node: ast.AST) -> int | float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        raise ValueError(f"eval: only arithmetic on numbers is supported, got {expression!r}")

    try:
        tree = ast.parse(str(expression).strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"eval: not an arithmetic expression: {expression!r}") from None
    return value(tree.body)


def is_original_config(raw: Any) -> bool:
    """Whether a loaded YAML mapping is an original-tool annotation config (has any of its sections)."""
    return isinstance(raw, dict) and any(section in raw for section in SECTIONS)


def load_original_config(path: str | Path) -> dict[str, Any]:
    """Read an original-tool annotation config and return it as a ``score_documents`` config of ours.

    Raises:
        ParamsError: the file cannot be read, or a key is unknown, missing or has no equivalent (named;
            the caller adds the file name).
    """
    if not OmegaConf.has_resolver("eval"):
        OmegaConf.register_new_resolver("eval", arithmetic)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OSError, OmegaConfBaseException, ValueError) as exc:
        raise ParamsError(f"cannot read the config: {exc}") from None
    return translate(raw)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "tokenizer.special_tokens":
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        target = target.setdefault(parent, {})
    target[leaf] = value


def translate(raw: dict[str, Any]) -> dict[str, Any]:
    """Map a resolved original config onto ours; see the module docstring for the rules."""
    if "rest_endpoint" in raw:
        raise ParamsError("rest_endpoint: endpoint URLs come from the environment here: set OPENAI_BASE_URL")
    annotator: dict[str, Any] = {"backend": "openai", "api": "completions"}
    flat = _flatten(raw)
    for key, value in flat.items():
        if key in IGNORED:
            logger.info("config key %s is ignored: %s", key, IGNORED[key])
        elif key in RENAMED:
            _set(annotator, RENAMED[key], value)
        elif key.startswith(_PASSTHROUGH):
            annotator.setdefault("extra_body", {})[key.removeprefix(_PASSTHROUGH)] = value
        elif key not in HANDLED:
            known = ", ".join(sorted({*IGNORED, *RENAMED, *HANDLED, _PASSTHROUGH + "<server parameter>"}))
            raise ParamsError(f"{key}: unknown config key; known keys: {known}")
    _refuse_unsupported(flat)
    annotator.setdefault("model", _required(flat, "settings.model_name", "llm_rest_client.model_name"))
    tokenizer = flat.get("settings.tokenizer_name_or_path") or annotator.get("model")
    annotator.setdefault("tokenizer", tokenizer)
    prompt = _required(flat, "prompt_builder.prompt_template_file_path", "settings.paths.prompt_template_file_path")
    task = _task(flat, str(prompt))
    inputs = _required(flat, "settings.paths.raw_data_file_paths")
    output_dir = _required(flat, "document_processor.output_directory_path", "settings.paths.output_directory_path")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(annotator["model"])).strip("_.-") or "score_documents"
    output = str(Path(str(output_dir)) / name)
    fields = {"id": flat.get("document_processor.document_id_column") or "id"}
    language = flat.get("document_processor.jq_language_pattern")
    if language:
        match = _JQ_FIELD.match(str(language))
        if match is None:
            raise ParamsError(
                f"document_processor.jq_language_pattern: {language!r} has no equivalent; only a top-level "
                "field such as .language is supported"
            )
        fields["language"] = match.group(1)
    return {
        "input": list(convert(inputs, tuple[str, ...], "settings.paths.raw_data_file_paths")),
        "output": output,
        "report": f"{output}.report.json",
        "name": name,
        "fields": fields,
        "tasks": [task],
        "annotator": annotator,
    }


def _refuse_unsupported(flat: dict[str, Any]) -> None:
    """Keys the original honoured that have no equivalent here, unless set to their no-op value."""
    starts = flat.get("settings.paths.start_indexes") or []
    if any(convert(v, int, "settings.paths.start_indexes") for v in starts):
        raise ParamsError(
            "settings.paths.start_indexes: resuming at a line index has no equivalent; the request cache resumes "
            "any run where it stopped: remove the key"
        )
    if flat.get("document_processor.strings_to_remove"):
        raise ParamsError(
            "document_processor.strings_to_remove: removing strings from documents has no equivalent here; clean "
            "the documents in the sample stage or remove the key"
        )
    if flat.get("tokenizer.special_tokens"):
        raise ParamsError(
            "tokenizer.special_tokens: extra special tokens have no equivalent; the tokenizer is used as is"
        )


def _required(flat: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if flat.get(key) not in (None, ""):
            return flat[key]
    raise ParamsError(f"{keys[0]}: missing required key")


def _task(flat: dict[str, Any], prompt: str) -> dict[str, Any]:
    """The task: named by ``score_metric_name`` (``educational_score`` → ``educational``), labels from the prompt."""
    try:
        data = yaml.safe_load(Path(prompt).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"prompt_builder.prompt_template_file_path: cannot read {prompt}: {exc}") from None
    if isinstance(data, dict) and "prompt" in data and "languages" not in data:
        raise ParamsError(
            f"prompt_builder.prompt_template_file_path: {prompt} is a prompt of the original tool, which names "
            "neither its labels nor its score format; write it as a prompt file of ours (labels, score_prefix, "
            "languages: see prompts/educational_v1.yaml) and point the config at it"
        )
    labels = load_prompt(prompt).labels
    metric = str(_required(flat, "document_processor.score_metric_name"))
    name = metric.removesuffix("_score") or metric
    return {"name": name, "prompt": prompt, "num_targets": len(labels), "threshold": float(len(labels) // 2)}
