"""Options shared by ``mlfilter interrater_reliability`` and ``mlfilter plot_scores``.

Both take annotation files, folders or globs in our format or the original tool's, an optional
``--aggregation`` (each input's generations → one score per annotator; without it every generation
is a rater), and ``--task`` to pick tasks. Tasks and their label spaces come from ``params.yaml``
when it exists (``--params``). Otherwise the tasks are the ones our files name (the original tool's
files join a task by their prompt name: the task's own name or the prompt name our records carry for
it, or the only task), or with ``--task`` (or with only original-format files) one task named by it
(default ``score``) that every original-format file joins; each with ``--num_targets`` labels and
positive cut ``--threshold``.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, get_args

from mlfilter.errors import MlfilterError
from mlfilter.evaluation.params import Aggregation
from mlfilter.params import DEFAULT_PARAMS_FILE, TaskParams, load_section, load_tasks, read_params_file

if TYPE_CHECKING:
    from mlfilter.evaluation.ratings import Ratings

DEFAULT_TASK = "score"
DEFAULT_NUM_TARGETS = 6


def add_rating_arguments(parser: argparse.ArgumentParser) -> None:
    """Inputs, aggregation, task selection and label-space options."""
    parser.add_argument(
        "path_to_files",
        nargs="+",
        metavar="PATH",
        help="annotation files, folders (e.g. data/annotations/<annotator>) or globs; ours or the original tool's",
    )
    parser.add_argument(
        "--aggregation",
        choices=get_args(Aggregation),
        help="combine each annotator's generations into one score per document (majority: most frequent label, "
        "ties → mean of the tied labels); without it every generation is compared as a rater of its own",
    )
    parser.add_argument(
        "--task",
        action="append",
        dest="tasks",
        metavar="NAME",
        help="only this task (repeat for several; default: every task found)",
    )
    parser.add_argument(
        "--params",
        default=DEFAULT_PARAMS_FILE,
        help="params file with the task list, used when it exists (default: %(default)s)",
    )
    parser.add_argument(
        "--num_targets",
        type=int,
        default=DEFAULT_NUM_TARGETS,
        help="labels 0..N-1 of the task when there is no params file (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="positive cut of binary metrics when there is no params file (default: num_targets / 2)",
    )
    parser.add_argument(
        "--documents",
        action="append",
        metavar="PATH",
        help="document or label file/folder with 'id' and 'language', for per-language metrics (repeatable)",
    )


def task_list(args: argparse.Namespace) -> tuple[tuple[TaskParams, ...], dict[str, str]]:
    """The tasks to read (with the original tool's prompt-name mapping) from params or the options."""
    if os.path.exists(args.params):
        tasks = load_tasks(args.params)
        task_names = prompt_task_names(args.params)
    else:
        threshold = args.threshold if args.threshold is not None else args.num_targets / 2
        from mlfilter.evaluation.ratings import find_tasks

        found = find_tasks(args.path_to_files) if not args.tasks else None
        if found is not None and found.tasks:
            names, task_names = found.tasks, found.task_names()
        else:
            names, task_names = [args.tasks[0] if args.tasks else DEFAULT_TASK], {}
        tasks = tuple(TaskParams(name=n, prompt="", num_targets=args.num_targets, threshold=threshold) for n in names)
    if args.tasks:
        known = {task.name for task in tasks}
        unknown = [name for name in args.tasks if name not in known]
        if unknown:
            raise MlfilterError(f"--task {unknown[0]}: no such task; tasks: {', '.join(sorted(known))}")
    return tasks, task_names


def prompt_task_names(params_path: str) -> dict[str, str]:
    """The original tool's prompt names → task names (``aggregate.task_names``), if the params set them."""
    if "aggregate" not in read_params_file(params_path):
        return {}
    return dict(load_section("aggregate", params_path).task_names)


def read_ratings(args: argparse.Namespace) -> Ratings:
    """Read the inputs named on the command line into rating tables of the selected tasks."""
    from mlfilter.evaluation.ratings import load_languages, load_ratings

    tasks, task_names = task_list(args)
    languages = load_languages(args.documents) if args.documents else None
    ratings = load_ratings(
        args.path_to_files, tasks, aggregation=args.aggregation, task_names=task_names, languages=languages
    )
    if args.tasks:
        ratings.tables = {name: table for name, table in ratings.tables.items() if name in args.tasks}
    if not ratings.tables:
        raise MlfilterError(
            f"no valid scores for {'task(s) ' + ', '.join(args.tasks) if args.tasks else 'any task'} in "
            f"{', '.join(args.path_to_files)} (records read: {ratings.records}, dropped: {dict(ratings.dropped)})"
        )
    return ratings
