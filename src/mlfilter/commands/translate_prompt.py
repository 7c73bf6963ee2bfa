"""``mlfilter translate-prompt``: translate a prompt file into more languages as a new prompt version."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter translate-prompt``."""
    parser.add_argument("prompt", help="the prompt file to translate, e.g. prompts/educational_v2.yaml")
    parser.add_argument("--languages", nargs="+", required=True, help="target language codes, e.g. ga mt is")
    parser.add_argument("--output", required=True, help="the new prompt version, e.g. prompts/educational_v3.yaml")
    parser.add_argument("--source-language", help="the variant to translate from (default: the file's default)")
    parser.add_argument(
        "--review-sheet", help="CSV of source and translation side by side (default: <output>.review.csv)"
    )
    parser.add_argument("--model", help="model on the OpenAI-compatible server (not needed with DEEPL_API_KEY)")
    parser.add_argument("--base-url-env", default="OPENAI_BASE_URL", help="variable with the server URL(s)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="variable with the server's API key")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="per request (default: %(default)s)")
    parser.add_argument("--max-retries", type=int, default=4, help="per request (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Translate; exit 1 when some languages were refused (they are named on stderr and in the review sheet)."""
    from mlfilter.annotation.backends.openai_client import OpenAIClient
    from mlfilter.annotation.params import AnnotatorParams
    from mlfilter.annotation.runner import base_urls_from_env
    from mlfilter.annotation.translation import OpenAITranslator, TranslationError, deepl_translator, translate_prompt

    translator = deepl_translator(os.environ)
    if translator is None:
        if not args.model:
            raise TranslationError("--model: required unless DEEPL_API_KEY is set")
        params = AnnotatorParams(model=args.model, base_url_env=args.base_url_env, api_key_env=args.api_key_env)
        urls = base_urls_from_env(params, os.environ)
        if not urls:
            raise TranslationError(
                f"environment variable {args.base_url_env} is not set: give the translating server's base URL(s), "
                "comma-separated, e.g. http://gpu-node-1:8000/v1, or set DEEPL_API_KEY"
            )
        client = OpenAIClient(
            urls,
            os.environ.get(args.api_key_env) or None,
            concurrency=8,
            timeout_s=args.timeout_s,
            max_retries=args.max_retries,
        )
        translator = OpenAITranslator(client, args.model)
    result = translate_prompt(
        args.prompt,
        args.languages,
        args.output,
        translator,
        source_language=args.source_language,
        review_sheet=args.review_sheet,
    )
    print(f"{args.output}: translated {', '.join(result.written)}")
    for language, reason in result.refused.items():
        print(f"refused {language}: {reason}", file=sys.stderr)
    return 1 if result.refused else 0
