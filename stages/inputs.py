"""DVC stage ``inputs`` (always run): content hashes of the files params.yaml names → data/inputs/.

    python stages/inputs.py --output data/inputs

The user's sample sources, each annotator's prompt files and imported annotation files cannot be
listed as deps in dvc.yaml (they are lists in params.yaml); their hashes, one JSON file per consuming
stage, can. An edit to any of them reruns exactly the stage that reads it, and what follows. It also
drops the dvc.lock entries of annotators removed from params.yaml.
"""

from __future__ import annotations

import argparse
import logging

from mlfilter.inputs import prune_lock, write_inputs
from mlfilter.params import DEFAULT_PARAMS_FILE, load_section
from mlfilter.stage import run_stage


def main() -> int:
    """Hash the named inputs and write one JSON file per consuming stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="data/inputs", help="folder of the hash files (default: %(default)s)")
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")
    args = parser.parse_args()
    log = logging.getLogger("mlfilter.inputs")
    counts = write_inputs(args.output, args.params)
    log.info("hashed %s", ", ".join(f"{k}: {v}" for k, v in counts.items()))
    for stage in prune_lock("dvc.lock", load_section("annotate", args.params).annotators):
        log.info("dvc.lock: dropped %s (its annotator is no longer in %s)", stage, args.params)
    return 0


if __name__ == "__main__":
    run_stage("inputs", main)
