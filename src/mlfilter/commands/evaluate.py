"""``mlfilter evaluate``: agreement among annotators, gold metrics and the classifier on the test split."""

from __future__ import annotations

import argparse
import logging

from mlfilter.commands.options import add_configured_annotators, add_metrics
from mlfilter.evaluation.params import EvaluateParams
from mlfilter.params import DEFAULT_PARAMS_FILE, load_section, load_tasks
from mlfilter.reports import format_metric, write_headline

log = logging.getLogger("mlfilter.evaluate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlfilter evaluate`` (and of ``stages/evaluate.py``)."""
    parser.add_argument(
        "--annotations", default="data/annotations", help="every annotator's annotations (default: %(default)s)"
    )
    parser.add_argument(
        "--documents", default="data/sample", help="documents with their language (default: %(default)s)"
    )
    parser.add_argument(
        "--test", default="data/splits/test.jsonl.zst", help="labelled test split (default: %(default)s)"
    )
    parser.add_argument("--model", default="models/annotator/final", help="trained model (default: %(default)s)")
    parser.add_argument(
        "--train",
        help="labelled train split: fit the TF-IDF + ridge baseline on it and report it and the classifier's margin "
        "(the DVC stage passes data/splits/train.jsonl.zst; default: no baseline)",
    )
    parser.add_argument(
        "--gold",
        default="data/labels/gold.jsonl.zst",
        help="gold labels; an empty file means none (default: %(default)s)",
    )
    parser.add_argument("--output", default="reports/evaluate", help="reports and plots (default: %(default)s)")
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, help="params file (default: %(default)s)")
    add_metrics(parser, "reports/metrics/evaluate")
    add_configured_annotators(parser)


def run(args: argparse.Namespace) -> int:
    """Evaluate and write ``metrics.json``, ``report.json``, PNGs, DVC plot data and the headline figures."""
    from mlfilter.evaluation.options import prompt_task_names
    from mlfilter.labels.annotations import configured_annotations

    params: EvaluateParams = load_section("evaluate", args.params)
    tasks = load_tasks(args.params)
    # torch, transformers and the plotting libraries load once the params are read: a bad file answers at once.
    from mlfilter.evaluation.report import headline_figures
    from mlfilter.evaluation.run import EvaluateInputs, run_evaluate

    annotations = [args.annotations]
    if args.configured_annotators:
        annotations = configured_annotations(args.annotations, load_section("annotate", args.params).annotators)
    headline = run_evaluate(
        EvaluateInputs(
            annotations=tuple(annotations),
            test=args.test,
            model=args.model,
            documents=args.documents,
            gold=args.gold,
            train=args.train,
        ),
        args.output,
        tasks,
        params,
        seed=load_section("seed", args.params),
        task_names=prompt_task_names(args.params),
    )
    write_headline(args.metrics, headline_figures(headline, [task.name for task in tasks]))
    for task, metrics in headline.get("classifier", {}).items():
        log.info(
            "%s: classifier MAE %s, macro-F1 %s, F1@threshold %s, label-ceiling ratio %s",
            task,
            format_metric(metrics["mae"]),
            format_metric(metrics["macro_f1"]),
            format_metric(metrics["f1_at_threshold"]),
            format_metric(metrics["label_ceiling_ratio"]),
        )
        baseline = headline.get("baseline", {}).get(task)
        if baseline is not None:
            margin = headline["margin_over_baseline"][task]
            log.info(
                "%s: TF-IDF baseline Spearman %s, MAE %s; the classifier's margin: Spearman %s, MAE %s (%s)",
                task,
                format_metric(baseline["spearman"]),
                format_metric(baseline["mae"]),
                format_metric(margin["spearman"]),
                format_metric(margin["mae"]),
                "beats the baseline" if margin.get("beats_baseline") else "does not beat the baseline",
            )
    return 0
