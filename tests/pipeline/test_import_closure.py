"""Every mlfilter module a stage script can import is a dep of that stage in dvc.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.pipeline.closure import REPO_ROOT, import_closure


def stage_deps() -> dict[str, tuple[str, list[str]]]:
    """Stage name → (its script, its deps as written in dvc.yaml; foreach stages by their template)."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    found = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = next(word for word in body["cmd"].split() if word.startswith("stages/"))
        found[name] = (script, [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])])
    return found


def covered(path: Path, deps: list[str]) -> bool:
    """True when ``path`` is one of ``deps`` or lies inside a folder among them."""
    relative = path.relative_to(REPO_ROOT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


STAGES = stage_deps()


def test_every_stage_script_is_a_stage() -> None:
    scripts = {script for script, _ in STAGES.values()}
    assert scripts == {f"stages/{p.name}" for p in (REPO_ROOT / "stages").glob("*.py")}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_import_closure_is_covered_by_deps(stage: str) -> None:
    script, deps = STAGES[stage]
    assert script in deps, f"{stage}: its script {script} is not among its deps"
    closure = import_closure(REPO_ROOT / script)
    assert len(closure) > 3, f"{stage}: the closure of {script} looks empty; is the parser broken?"
    missing = sorted(str(p.relative_to(REPO_ROOT)) for p in closure if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage!r} imports modules that are not among its deps: {missing}"


def test_closure_follows_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The reader sees imports inside functions: the train stage reaches torch-side modules lazily."""
    closure = {str(p.relative_to(REPO_ROOT)) for p in import_closure(REPO_ROOT / "stages/train.py")}
    assert "src/mlfilter/training/run.py" in closure  # imported inside commands/train.py:run()
    assert "src/mlfilter/modeling.py" in closure  # imported by training/run.py
    assert "src/mlfilter/training/__init__.py" in closure  # a package's __init__ runs first
