"""``mlfilter score_documents --config_file_path cfg.yaml``: the original tool's command, on our engine.

Scores JSONL documents with one annotator outside DVC: same backends, request cache and report as
the annotate stage.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Literal

from mlfilter.annotation.original_config import is_original_config, load_original_config
from mlfilter.annotation.params import AnnotatorParams
from mlfilter.commands.options import add_dry_run
from mlfilter.params import ParamsError, TaskParams, convert, read_params_file

EXAMPLE = """\
config file (YAML):
  input: [data/raw/*.jsonl]          # document files, folders or globs (.jsonl, .jsonl.gz/.zst, .parquet)
  output: out/annotations            # folder for part-*.jsonl.zst annotation records
  report: out/annotations.report.json  # optional; default: <output>.report.json
  name: llama70b                     # annotator name written into every record
  cache: .mlfilter/cache/requests.sqlite  # optional; $MLFILTER_CACHE overrides
  env_file: .env                     # optional file with OPENAI_BASE_URL / OPENAI_API_KEY
  fields: {id: document_id}          # optional: record keys of id, text, language, url
  on_error: raise                    # raise | skip (count) malformed input lines
  tasks:                             # what params.yaml `tasks` holds
    - {name: educational, prompt: prompts/educational_v1.yaml, num_targets: 6, threshold: 3}
  annotator:                         # what an entry of params.yaml `annotate.annotators` holds
    backend: openai                  # openai | openai_batch | local | import
    model: meta-llama/Llama-3.3-70B-Instruct
    score_mode: generate             # generate | logprobs | json
    n: 3
    sampling: {temperature: 0.7, top_p: 0.9, max_new_tokens: 512}  # optional seed: a base seed; each
                                     # request's seed derives from it, its content and its generation
    concurrency: 256
    max_document_tokens: 3000
    tokenizer: meta-llama/Llama-3.3-70B-Instruct   # or a local folder; else characters
    base_url_env: OPENAI_BASE_URL    # env var with the server base URL(s), comma-separated
    api_key_env: OPENAI_API_KEY      # env var with the API key (never put keys in the file)

Paths are relative to the working directory. Endpoint URLs and API keys come only from the
environment (or env_file), never from the config.

The original tool's annotation configs (settings / llm_rest_client / tokenizer / prompt_builder /
document_processor) are read too: their keys map onto the above; keys without an equivalent are an
error naming the key."""


@dataclass(frozen=True)
class ScoreDocumentsConfig:
    """The ``score_documents`` config: an annotator entry plus the tasks and input/output paths."""

    input: tuple[str, ...]
    output: str
    tasks: tuple[TaskParams, ...]
    annotator: AnnotatorParams
    report: str = ""
    name: str = "score_documents"
    cache: str = ""
    env_file: str = ".env"
    fields: dict[str, str] = field(default_factory=dict)
    on_error: Literal["raise", "skip"] = "raise"


def load_config(path: str) -> ScoreDocumentsConfig:
    """Read and validate a ``score_documents`` config, ours or the original tool's; errors name the file and key."""
    raw = read_params_file(path)
    try:
        if is_original_config(raw):
            raw = load_original_config(path)
        return convert(raw, ScoreDocumentsConfig, "")
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter score_documents``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLE
    parser.add_argument("--config_file_path", required=True, help="YAML config (see below)")
    add_dry_run(parser)


def run(args: argparse.Namespace) -> int:
    """Score the documents and print the report (or the dry-run summary)."""
    from mlfilter.annotation.runner import annotate

    config = load_config(args.config_file_path)
    result = annotate(
        config.name,
        config.annotator,
        config.tasks,
        config.input,
        config.output,
        config.report or f"{config.output.rstrip('/')}.report.json",
        cache=config.cache or None,
        env_file=config.env_file,
        fields=config.fields or None,
        on_error=config.on_error,
        dry_run=args.dry_run,
    )
    print(json.dumps(result, indent=2))
    return 0
