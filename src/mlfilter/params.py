"""Typed parameters: one frozen dataclass per ``params.yaml`` section, validated at start.

Values are converted to the declared types, so ``2e-05`` — which ``dvc exp run -S`` writes and
plain YAML reads as a string — comes back as a float, and a whole-number float such as ``200000.0`` (what
``-S key=2e5`` writes) is accepted for an integer key; a fractional one is refused. Unknown keys, missing keys
and wrong types raise :class:`ParamsError` naming the key path and what was expected.

Runtime knobs — keys that change how fast or where a stage runs but never its outputs (workers,
devices, scratch folders, inference batch sizes) — live under the top-level ``runtime:`` section,
mirroring the stage sections (``runtime.training.dataloader_num_workers``). DVC stages do not track
``runtime``, so changing a knob reruns nothing; :func:`load_section` merges ``runtime.<section>`` into
its section before validation, so the library sees one typed value.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from mlfilter.errors import MlfilterError

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_PARAMS_FILE = "params.yaml"
#: The top-level section of runtime knobs (untracked by DVC), merged into the stage sections.
RUNTIME_SECTION = "runtime"

#: Section name → "module:DataclassName". Each stage's library module owns its section's type.
SECTIONS: dict[str, str] = {
    "seed": "builtins:int",
    "tasks": "mlfilter.params:TaskList",
    "sample": "mlfilter.sampling.params:SampleParams",
    "annotate": "mlfilter.annotation.params:AnnotateParams",
    "aggregate": "mlfilter.labels.params:AggregateParams",
    "split": "mlfilter.labels.params:SplitParams",
    "training": "mlfilter.training.params:TrainingParams",
    "evaluate": "mlfilter.evaluation.params:EvaluateParams",
    "filter": "mlfilter.filtering.params:FilterParams",
}


class ParamsError(MlfilterError, ValueError):
    """A parameter is missing, unknown or of the wrong type; the message names its key path."""


@dataclass(frozen=True)
class TaskParams:
    """One scoring task shared by annotate, aggregate, train, evaluate and filter.

    Labels of the task are the integers ``0 .. num_targets - 1``; ``threshold`` is the score at or
    above which a document counts as positive in binary metrics and keep rules.
    """

    name: str
    prompt: str
    num_targets: int
    threshold: float

    def __post_init__(self) -> None:
        if self.num_targets < 2:
            raise ParamsError(f"tasks.{self.name}.num_targets: expected at least 2, got {self.num_targets}")
        if not 0 < self.threshold < self.num_targets:
            raise ParamsError(
                f"tasks.{self.name}.threshold: expected a value in (0, {self.num_targets}), got {self.threshold}"
            )


TaskList = tuple[TaskParams, ...]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return repr(tp).replace("typing.", "")
    return getattr(tp, "__name__", repr(tp))


def _fail(key: str, tp: Any, value: Any) -> ParamsError:
    return ParamsError(f"{key or '<root>'}: expected {_type_name(tp)}, got {value!r}")


def convert(value: Any, tp: Any, key: str = "") -> Any:
    """Convert ``value`` read from YAML to type ``tp``; raise :class:`ParamsError` naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise _fail(key, tp, value)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        mapping_errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(value, arg, key)
            except ParamsError as exc:
                if isinstance(value, dict) and typing.get_origin(arg) in (dict, Mapping):
                    mapping_errors.append(exc)
        if len(mapping_errors) == 1:  # a mapping where one member is a mapping: name the bad entry
            raise mapping_errors[0]
        raise _fail(key, tp, value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _convert_dataclass(value, tp, key)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _fail(key, tp, value)
        item_type = args[0] if args else Any
        return tuple(convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise _fail(key, tp, value)
        key_type, val_type = args if args else (Any, Any)
        return {convert(k, key_type, f"{key}.{k}"): convert(v, val_type, f"{key}.{k}") for k, v in value.items()}
    return _convert_scalar(value, tp, key)


def _whole_number(value: Any) -> int | None:
    """``200000.0`` or ``"2e5"`` (what ``dvc exp run -S key=2e5`` writes) as an int; None if not a whole number."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _convert_scalar(value: Any, tp: Any, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _whole_number(value)
        if number is not None:
            return number
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, str):
            return Path(value)
    else:
        raise ParamsError(f"{key}: unsupported parameter type {tp!r}")
    raise _fail(key, tp, value)


def _convert_dataclass(value: Any, cls: type[T], key: str) -> T:
    if not isinstance(value, dict):
        raise ParamsError(f"{key or '<root>'}: expected a mapping of {cls.__name__} fields, got {value!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ParamsError(f"{_join(key, str(unknown[0]))}: unknown key; allowed keys: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, field in fields.items():
        path = _join(key, name)
        if name in value:
            kwargs[name] = convert(value[name], hints[name], path)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{path}: missing required key ({_type_name(hints[name])})")
    try:
        return cls(**kwargs)
    except ParamsError as exc:
        raise ParamsError(f"{key}: {exc}" if key and not str(exc).startswith(key) else str(exc)) from None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def read_params_file(path: str | Path = DEFAULT_PARAMS_FILE) -> dict[str, Any]:
    """Read the raw YAML mapping of a params file, with a clear error when it is missing or bad."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return data


def section_type(section: str) -> Any:
    """The declared type of a params section."""
    if section not in SECTIONS:
        raise ParamsError(f"{section}: unknown params section; known sections: {', '.join(SECTIONS)}")
    module_name, _, attr = SECTIONS[section].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def load_section(section: str, path: str | Path = DEFAULT_PARAMS_FILE, *, raw: dict | None = None) -> Any:
    """Load and validate one section of ``params.yaml`` as its typed value."""
    data = read_params_file(path) if raw is None else raw
    if section not in data:
        raise ParamsError(f"{path}: missing section '{section}'")
    try:
        runtime = data.get(RUNTIME_SECTION) or {}
        if not isinstance(runtime, dict):
            raise ParamsError(f"{RUNTIME_SECTION}: expected a mapping of sections, got {runtime!r}")
        value = data[section]
        if section in runtime:
            value = merge_runtime(value, runtime[section], section)
        return convert(value, section_type(section), section)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


def merge_runtime(tracked: Any, knobs: Any, key: str) -> Any:
    """``tracked`` (a section as read) with the runtime ``knobs`` for it merged in, key by key.

    Knobs for an entry of a mapping that the section does not have (an annotator removed from
    ``annotate.annotators``) are left out with a warning, so removing an annotator needs one edit.
    Raises :class:`ParamsError` when a knob is set in both places.
    """
    if not isinstance(knobs, dict) or not isinstance(tracked, dict):
        raise ParamsError(f"{RUNTIME_SECTION}.{key}: expected a mapping like the section {key}, got {knobs!r}")
    merged = dict(tracked)
    for name, value in knobs.items():
        path = f"{key}.{name}"
        if name not in tracked:
            if isinstance(value, dict) and tracked and all(isinstance(v, dict) for v in tracked.values()):
                log.warning("%s.%s: %s has no entry %r; its knobs are not used", RUNTIME_SECTION, path, key, name)
                continue
            merged[name] = value
        elif isinstance(value, dict) and isinstance(tracked[name], dict):
            merged[name] = merge_runtime(tracked[name], value, path)
        else:
            raise ParamsError(f"{path}: set both here and under {RUNTIME_SECTION}.{path}; keep one")
    return merged


def load_tasks(path: str | Path = DEFAULT_PARAMS_FILE) -> TaskList:
    """The shared task list, with unique names."""
    tasks: TaskList = load_section("tasks", path)
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ParamsError(f"{path}: tasks: duplicate task name(s) {', '.join(duplicates)}")
    if not tasks:
        raise ParamsError(f"{path}: tasks: at least one task is required")
    return tasks


def load_all(path: str | Path = DEFAULT_PARAMS_FILE) -> dict[str, Any]:
    """Load and validate every section of the params file; unknown sections are rejected."""
    data = read_params_file(path)
    unknown = sorted(set(data) - set(SECTIONS) - {RUNTIME_SECTION})
    if unknown:
        raise ParamsError(f"{path}: {unknown[0]}: unknown params section; known: {', '.join(SECTIONS)}")
    stray = sorted(set(data.get(RUNTIME_SECTION) or {}) - set(data))
    if stray:
        raise ParamsError(f"{path}: {RUNTIME_SECTION}.{stray[0]}: no section {stray[0]!r} to set runtime knobs of")
    resolved = {name: load_section(name, path, raw=data) for name in data if name != RUNTIME_SECTION}
    if "tasks" in resolved:
        load_tasks(path)
    return resolved


def to_plain(value: Any) -> Any:
    """Turn typed params back into plain YAML-friendly values (for printing and reports)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
