"""Stage ``annotate@<annotator>``: score the sampled documents with one LLM annotator.

    python stages/annotate.py --annotator NAME --input data/sample --output data/annotations/NAME \
        --report reports/annotate/NAME.json [--dry-run]

Params: ``annotate.annotators.NAME`` and the shared ``tasks``; server URLs and keys come from the
environment or an untracked ``.env``. Finished requests are cached (``annotate.cache``), so a rerun
or a killed run resumes without asking the model again.
"""

from __future__ import annotations

import argparse
import json

from mlfilter.annotation.runner import annotate
from mlfilter.logs import setup_logging
from mlfilter.params import DEFAULT_PARAMS_FILE, load_section, load_tasks
from mlfilter.stage import run_stage


def main() -> int:
    """Annotate, write the records and the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotator", required=True, help="name under annotate.annotators in params.yaml")
    parser.add_argument("--input", nargs="+", required=True, help="document files, folders or globs")
    parser.add_argument("--output", required=True, help="folder for the annotation shards")
    parser.add_argument("--report", required=True, help="metrics JSON")
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be sent; write nothing")
    args = parser.parse_args()
    setup_logging(f"annotate.{args.annotator}")
    section = load_section("annotate", args.params)
    result = annotate(
        args.annotator,
        section.annotator(args.annotator),
        load_tasks(args.params),
        args.input,
        args.output,
        args.report,
        cache=section.cache,
        env_file=section.env_file,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    run_stage("annotate", main)
