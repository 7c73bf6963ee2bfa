"""Runtime knobs live under `runtime:` and reach the stages merged into their sections."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlfilter.params import ParamsError, load_all, load_section

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _repo_params() -> dict:
    return yaml.safe_load(REPO_PARAMS.read_text())


def test_runtime_knobs_are_merged_into_their_sections(tmp_path: Path) -> None:
    data = _repo_params()
    data["runtime"]["training"]["dataloader_num_workers"] = 3
    data["runtime"]["filter"]["scoring"]["device"] = "cpu"
    data["runtime"]["annotate"]["annotators"]["smollm2_generate"]["batch_size"] = 2
    path = _write(tmp_path, data)
    assert load_section("training", path).dataloader_num_workers == 3
    scoring = load_section("filter", path).scoring
    assert (scoring.device, scoring.dtype) == ("cpu", data["filter"]["scoring"]["dtype"]), "merged, not replaced"
    annotators = load_section("annotate", path).annotators
    assert annotators["smollm2_generate"].batch_size == 2
    assert annotators["smollm2_generate"].score_mode == "generate"
    assert "runtime" not in load_all(path)


def test_a_knob_may_also_sit_in_its_section_without_runtime(tmp_path: Path) -> None:
    path = _write(tmp_path, {"training": {"dataloader_num_workers": 5}})
    assert load_section("training", path).dataloader_num_workers == 5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["training"].update(dataloader_num_workers=1), r"training\.dataloader_num_workers: set both"),
        (lambda d: d["runtime"].update(training=3), r"runtime\.training: expected a mapping"),
        (lambda d: d["runtime"]["training"].update(no_such_knob=1), r"training\.no_such_knob: unknown key"),
    ],
)
def test_bad_runtime_entries_name_the_key(tmp_path: Path, edit, message: str) -> None:
    data = _repo_params()
    edit(data)
    with pytest.raises(ParamsError, match=message):
        load_all(_write(tmp_path, data))


def test_runtime_for_a_missing_section_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, {"seed": 1, "runtime": {"training": {"dataloader_num_workers": 1}}})
    with pytest.raises(ParamsError, match=r"runtime\.training: no section 'training'"):
        load_all(path)


def test_knobs_of_a_removed_annotator_are_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _repo_params()
    data["runtime"]["annotate"]["annotators"]["gone"] = {"batch_size": 1}
    annotators = load_section("annotate", _write(tmp_path, data)).annotators
    assert "gone" not in annotators and "smollm2_generate" in annotators
    message = "runtime.annotate.annotators.gone: annotate.annotators has no entry 'gone'; its knobs are not used"
    assert message in caplog.text
