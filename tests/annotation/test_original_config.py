"""``mlfilter score_documents`` with the original tool's annotation config: mapping, a real run, aggregate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from mlfilter import cli
from mlfilter.annotation.original_config import arithmetic
from mlfilter.commands.score_documents import load_config
from mlfilter.labels.build import build_labels
from mlfilter.labels.params import AggregateParams
from mlfilter.params import ParamsError
from mlfilter.records import expand_inputs, iter_records
from mlfilter.scores import to_int_score
from tests.annotation.conftest import DOCUMENTS, EDUCATIONAL, ROOT, read_output
from tests.openai_server import FakeOpenAIServer

#: The shape of the original tool's configs/score_documents/lorem_ipsum.yaml (interpolations and
#: ${eval:...} included), pointed at the test documents, our prompt file and a packaged tokenizer.
CONFIG = """\
settings:
  model_name: fake/Llama-70B
  num_gpus: 1
  tokenizer_name_or_path: embedded:SmolLM2-135M-Instruct
  paths:
    raw_data_file_paths:
    - {documents}
    output_directory_path: {output}
    prompt_template_file_path: {prompt}
    start_indexes:
    - 0

llm_rest_client:
  model_name: ${{settings.model_name}}
  max_tokens: 1024
  sampling_params:
    max_tokens: 300
    temperature: 0.7
    n: 3
    top_p: 0.9
    repetition_penalty: 1.05
  max_pool_connections: 16
  max_pool_maxsize: 1000
  max_retries: 2
  backoff_factor: 0.4
  timeout: 100
  verbose: false
  num_gpus: ${{settings.num_gpus}}

tokenizer:
  pretrained_model_name_or_path: ${{settings.tokenizer_name_or_path}}
  special_tokens: null
  add_generation_prompt: true

prompt_builder:
  prompt_template_file_path: ${{settings.paths.prompt_template_file_path}}
  max_prompt_length: ${{eval:'${{llm_rest_client.max_tokens}} - ${{llm_rest_client.sampling_params.max_tokens}}'}}

document_processor:
  output_directory_path: ${{settings.paths.output_directory_path}}
  queue_size: 1000
  num_processes: 1
  score_metric_name: educational_score
  strings_to_remove: []
  jq_language_pattern: .language
  document_id_column: id
"""


def write_config(tmp_path: Path, text: str | None = None, **replace: str) -> Path:
    body = (text or CONFIG).format(documents=DOCUMENTS, output=tmp_path / "output", prompt=EDUCATIONAL.prompt)
    for old, new in replace.items():
        assert old in body, old
        body = body.replace(old, new)
    path = tmp_path / "cfg.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_the_original_config_maps_onto_ours(tmp_path: Path) -> None:
    config = load_config(str(write_config(tmp_path)))
    annotator = config.annotator
    assert config.input == (str(DOCUMENTS),)
    assert config.name == "fake_Llama-70B" and config.output == str(tmp_path / "output" / "fake_Llama-70B")
    assert config.fields == {"id": "id", "language": "language"}
    task = config.tasks[0]
    assert (task.name, task.prompt, task.num_targets, task.threshold) == ("educational", EDUCATIONAL.prompt, 6, 3.0)
    assert (annotator.backend, annotator.api, annotator.model) == ("openai", "completions", "fake/Llama-70B")
    assert annotator.tokenizer == "embedded:SmolLM2-135M-Instruct" and annotator.add_generation_prompt
    assert annotator.n == 3 and annotator.max_document_tokens == 1024 - 300
    sampling = annotator.sampling
    assert (sampling.max_new_tokens, sampling.temperature, sampling.top_p) == (300, 0.7, 0.9)
    assert annotator.extra_body == {"repetition_penalty": 1.05}
    assert (annotator.concurrency, annotator.max_retries, annotator.timeout_s) == (16, 2, 100.0)
    assert annotator.backoff_initial_s == 0.4


def test_an_original_config_runs_and_aggregate_reads_its_annotations(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("MLFILTER_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path, **{"backoff_factor: 0.4": "backoff_factor: 0.01"})
    assert cli.main(["score_documents", "--config_file_path", str(cfg)]) == 0
    capsys.readouterr()
    output = tmp_path / "output" / "fake_Llama-70B"
    report = json.loads((tmp_path / "output" / "fake_Llama-70B.report.json").read_text())
    assert report["requests"]["sent"] == server.request_count == 72 * 3
    records = read_output(output)
    assert len(records) == 72 and all(len(r["scores"]["educational"]) == 3 for r in records)
    assert report["generations"]["status"]["educational"] == {"ok": 72 * 3}
    assert report["truncation"]["method"] == "tokens"

    labels = tmp_path / "labels.jsonl"
    tasks = load_config(str(cfg)).tasks
    aggregated = build_labels(
        annotations=[str(output)],
        sample=[str(DOCUMENTS)],
        labels_path=labels,
        gold_path=tmp_path / "gold.jsonl",
        tasks=tasks,
        params=AggregateParams(),
    )
    assert aggregated["documents"]["kept"] == 72
    rows = [record for path in expand_inputs([str(labels)]) for _, record in iter_records(path)]
    by_id = {r["id"]: r for r in records}
    assert sorted(row["id"] for row in rows) == sorted(by_id)
    for row in rows:
        mean = sum(by_id[row["id"]]["scores"]["educational"]) / 3
        assert row["scores"] == [to_int_score(mean, 6)], "the mean of the 3 generations, rounded half up"


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"  verbose: false": "  verbose: false\n  temprature: 0.5"}, "llm_rest_client.temprature: unknown config key"),
        ({"settings:": "rest_endpoint: http://x:8000/\nsettings:"}, "rest_endpoint: endpoint URLs come from the env"),
        ({"strings_to_remove: []": "strings_to_remove: ['<s>']"}, "document_processor.strings_to_remove: removing"),
        ({"    - 0": "    - 10"}, "settings.paths.start_indexes: resuming at a line index has no equivalent"),
        (
            {"jq_language_pattern: .language": "jq_language_pattern: .meta.lang"},
            "document_processor.jq_language_pattern: '.meta.lang' has no equivalent",
        ),
        (
            {"  score_metric_name: educational_score\n": ""},
            "document_processor.score_metric_name: missing required key",
        ),
    ],
)
def test_keys_without_an_equivalent_name_themselves(
    tmp_path: Path, capsys: pytest.CaptureFixture, replace: dict[str, str], message: str
) -> None:
    cfg = write_config(tmp_path, **replace)
    assert cli.main(["score_documents", "--config_file_path", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: {message}" in err


def test_a_prompt_of_the_original_tool_is_refused_clearly(tmp_path: Path) -> None:
    prompt = tmp_path / "educational_prompt.yaml"
    prompt.write_bytes(orjson.dumps({"prompt": "Rate this: {placeholder}", "prompt_name": "fine_web_edu"}))
    cfg = write_config(tmp_path, **{str(EDUCATIONAL.prompt): str(prompt)})
    with pytest.raises(ParamsError, match="is a prompt of the original tool, which names neither its labels"):
        load_config(str(cfg))


@pytest.mark.parametrize(("expression", "value"), [("8192 - 500", 7692), ("2 * (3 + 4)", 14), ("-1 + 7 // 2", 2)])
def test_eval_is_arithmetic(expression: str, value: Any) -> None:
    assert arithmetic(expression) == value


@pytest.mark.parametrize("expression", ["__import__('os').getcwd()", "len('abc')", "1 +", "'a' * 3"])
def test_eval_runs_no_code(expression: str) -> None:
    with pytest.raises(ValueError, match="eval: "):
        arithmetic(expression)


def test_the_readme_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("ready for `aggregate`:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    cfg = tmp_path / "original.yaml"
    cfg.write_text(block, encoding="utf-8")
    monkeypatch.chdir(ROOT)
    config = load_config(str(cfg))
    assert config.output == "data/output/meta-llama_Llama-3.3-70B-Instruct"
    assert config.annotator.max_document_tokens == 8192 - 500 and config.annotator.concurrency == 256
    assert config.tasks[0].name == "educational"
