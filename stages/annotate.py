"""Stage ``annotate@<annotator>``: score the sampled documents with one LLM annotator.

    python stages/annotate.py --annotator NAME --input data/sample --output data/annotations/NAME \
        --report reports/annotate/NAME.json [--dry-run]

Params: ``annotate.annotators.NAME`` and the shared ``tasks``; server URLs and keys come from the
environment or an untracked ``.env``. Finished requests are cached (``annotate.cache``), so a rerun
or a killed run resumes without asking the model again.
"""

from __future__ import annotations

import argparse

from mlfilter.commands import annotate
from mlfilter.stage import run_stage


def main() -> int:
    """Annotate, write the records and the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    annotate.add_arguments(parser)
    return annotate.run(parser.parse_args())


if __name__ == "__main__":
    run_stage("annotate", main)
