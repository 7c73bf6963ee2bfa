"""``mlfilter proxy_sample``: choose what to annotate next — over-sample the documents a cheap proxy scores high.

Round 2 of the two-round recipe (README, "Choosing what to annotate"): a pool of documents (e.g. a large uniform
sample) is scored by a classifier from round 1 (``--model``) or by a TF-IDF model fitted here on the labels so far
(``--train``), stratified by that score, and drawn with equal allocation over the strata. Each drawn document keeps
its fields and gets ``metadata.inclusion_probability``, which the aggregate stage turns into the label weight.
"""

from __future__ import annotations

import argparse
import logging

from mlfilter.errors import MlfilterError
from mlfilter.params import DEFAULT_PARAMS_FILE, load_section, load_tasks
from mlfilter.reports import write_report

log = logging.getLogger("mlfilter.proxy_sample")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter proxy_sample``."""
    parser.add_argument("--pool", nargs="+", required=True, help="document files, folders or globs to draw from")
    parser.add_argument("--output", required=True, help="folder for the drawn documents (JSONL shards)")
    parser.add_argument("--size", type=int, required=True, help="how many documents to draw")
    proxy = parser.add_mutually_exclusive_group(required=True)
    proxy.add_argument("--model", help="proxy: a classifier folder from an earlier round (TF-IDF, fastText, encoder)")
    proxy.add_argument(
        "--train", help="proxy: fit TF-IDF + ridge on the labels so far (e.g. data/splits/train.jsonl.zst)"
    )
    parser.add_argument("--task", help="task whose score stratifies (default: the first task of the params file)")
    parser.add_argument(
        "--edges",
        help="comma-separated proxy-score cuts between strata (default: halves between labels, e.g. 0.5,1.5,…)",
    )
    parser.add_argument(
        "--pool-probability",
        type=float,
        default=1.0,
        help="each pool document's chance of being in the pool, when the pool is itself a uniform sample of the "
        "population (e.g. 0.01 for a 1%% sample); multiplies every inclusion probability (default: 1)",
    )
    parser.add_argument("--report", default="reports/proxy_sample.json", help="report JSON (default: %(default)s)")
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Draw the proxy-stratified sample and write it and its report."""
    from mlfilter.sampling.proxy import write_proxy_sample

    tasks = load_tasks(args.params)
    names = [task.name for task in tasks]
    if args.task is not None and args.task not in names:
        raise MlfilterError(f"--task {args.task!r}: not a task of {args.params}; tasks: {', '.join(names)}")
    task = tasks[names.index(args.task)] if args.task else tasks[0]
    try:
        edges = [float(cut) for cut in args.edges.split(",")] if args.edges else None
    except ValueError as exc:
        raise MlfilterError(f"--edges {args.edges!r}: expected comma-separated numbers") from exc
    try:
        report = write_proxy_sample(
            args.pool,
            args.output,
            task=task,
            model=args.model,
            train=args.train,
            sample_size=args.size,
            edges=edges,
            seed=load_section("seed", args.params),
            pool_probability=args.pool_probability,
        )
    except ValueError as exc:
        raise MlfilterError(str(exc)) from exc
    write_report(args.report, report)
    log.info(
        "proxy_sample: %d of %d pool documents drawn; per stratum %s",
        report["documents"]["kept"],
        report["documents"]["seen"],
        [(s["pool"], s["drawn"]) for s in report["strata"]],
    )
    return 0
