"""The saved model folder names its base encoder as params do: no machine path in a DVC output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
from mlfilter.params import TaskParams


def test_saved_model_config_holds_no_machine_path(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from mlfilter.training.params import TrainingParams
    from mlfilter.training.run import load_base, save_model

    params = TrainingParams(base_model=EMBEDDED_ENCODER)
    model, tokenizer = load_base(params, [TaskParams("educational", "prompts/educational_v1.yaml", 6, 3)])
    save_model(model, tokenizer, "card", tmp_path / "final")
    config = json.loads((tmp_path / "final" / "config.json").read_text())
    assert config["encoder"]["_name_or_path"] == EMBEDDED_ENCODER
    machine_path = str(Path(resolve_model(EMBEDDED_ENCODER).path).parent)
    for path in (tmp_path / "final").glob("*.json"):
        text = path.read_text()
        assert machine_path not in text and str(tmp_path) not in text, path.name
