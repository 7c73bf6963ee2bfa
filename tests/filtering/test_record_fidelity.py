"""The filter keeps records intact: the rounded threshold rule, empty documents, Parquet schemas."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlfilter.cli import main as cli_main
from mlfilter.errors import MlfilterError
from mlfilter.filtering.params import KeepParams
from mlfilter.filtering.pipeline import run_filter
from mlfilter.records import iter_records
from mlfilter.scores import at_or_above
from tests.filtering.conftest import filter_params, read_folder, write_shards


def run(tmp_path: Path, params: Any, name: str = "run") -> dict[str, Any]:
    root = tmp_path / name
    return run_filter(
        params, output=root / "filtered", attributes=root / "scores", reports=root / "reports", task_thresholds={}
    )


def strict_json(path: Path) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{path}: not strict JSON ({constant})")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def scores_of(folder: Path) -> dict[str, list[float | None]]:
    return {r["id"]: r["scores"] for records in read_folder(folder).values() for r in records}


@pytest.fixture(scope="module")
def regression_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged MiniLM with one regression head whose scores spread between the labels (not near integers)."""
    import torch
    from transformers import AutoTokenizer

    from mlfilter.embedded import EMBEDDED_ENCODER, resolve_model
    from mlfilter.modeling import AnnotatorModel

    torch.manual_seed(0)
    encoder = resolve_model(EMBEDDED_ENCODER).path
    model = AnnotatorModel.from_encoder(
        encoder, task_names=["educational"], num_targets_per_task=[6], is_regression=True, pooling="mean"
    )
    with torch.no_grad():
        head = model.heads.tasks[0].layers
        torch.nn.init.normal_(head.weight, std=1.0)
        head.bias.fill_(2.75)
    folder = tmp_path_factory.mktemp("regression") / "final"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(folder)
    return folder


def test_filter_threshold_3_keeps_exactly_the_documents_whose_rounded_score_is_3_or_more(
    tmp_path: Path, regression_model: Path, documents: list[dict[str, Any]], capsys: pytest.CaptureFixture
) -> None:
    write_shards(tmp_path / "corpus", documents, [".jsonl"])
    common = ["filter", "--model", str(regression_model), "--input", str(tmp_path / "corpus"), "--max-length", "96"]
    assert cli_main([*common, "--output", str(tmp_path / "rounded"), "--threshold", "educational=3"]) == 0
    capsys.readouterr()
    scores = scores_of(tmp_path / "rounded-scores")
    educational = np.asarray([s[0] for s in scores.values()])
    k = int(at_or_above(educational, 3).sum())
    # The rounded rule (FineWeb-Edu's int_score >= 3) is "raw score >= 2.5"; this corpus has documents between.
    assert k == int((educational >= 2.5).sum()) > int((educational >= 3).sum()) > 0
    kept = [r["id"] for records in read_folder(tmp_path / "rounded").values() for r in records]
    assert len(kept) == k
    assert all(scores[i][0] >= 2.5 for i in kept)
    assert cli_main([*common, "--output", str(tmp_path / "raw"), "--raw-cut", "educational=3"]) == 0
    raw_kept = [r["id"] for records in read_folder(tmp_path / "raw").values() for r in records]
    assert len(raw_kept) == int((educational >= 3).sum())


def test_empty_documents_are_counted_kept_with_null_scores_under_keep_all_and_dropped_otherwise(
    tmp_path: Path, model_dir: Path, documents: list[dict[str, Any]]
) -> None:
    blanks = [
        {"id": "empty", "text": "", "language": "en"},
        {"id": "spaces", "text": "  \n\t \u3000", "language": "de"},
    ]
    corpus = [*documents[:5], blanks[0], *documents[5:10], blanks[1]]
    write_shards(tmp_path / "corpus", corpus, [".jsonl", ".parquet"])
    params = filter_params(tmp_path / "corpus", model_dir)

    everything = run(tmp_path, params)
    assert everything["documents"] == {"in": 12, "kept": 12, "dropped": {}}
    kept = {r["id"]: r for records in read_folder(tmp_path / "run" / "filtered").values() for r in records}
    assert kept["empty"]["scores"] == [None, None] and kept["spaces"]["scores"] == [None, None]
    assert all(None not in kept[d["id"]]["scores"] for d in documents[:10])
    # No NaN anywhere: the mean score and histograms cover the ten scored documents only.
    reports = strict_json(tmp_path / "run" / "reports" / "metrics.json")
    assert sum(language["documents"] for language in reports["languages"].values()) == 10
    mean = np.mean([kept[d["id"]]["scores"][0] for d in documents[:10]])
    assert reports["scores"]["educational"]["mean"] == pytest.approx(mean, abs=1e-5)

    threshold = run(tmp_path, dataclasses.replace(params, keep=KeepParams(thresholds={"educational": 0})))
    assert threshold["documents"] == {"in": 12, "kept": 10, "dropped": {"empty_text": 2}}
    quantile = run(tmp_path, dataclasses.replace(params, keep=KeepParams(rule="quantile", fraction=1.0)))
    assert quantile["documents"] == {"in": 12, "kept": 10, "dropped": {"empty_text": 2}}
    assert threshold["shards"]["scored"] == quantile["shards"]["scored"] == 0


def _late_schema_table(rows: int) -> pa.Table:
    """Rows whose nullable columns are null until late in the file, with nested structs and lists."""
    late = rows - 3
    records = []
    for i in range(rows):
        records.append(
            {
                "id": f"doc-{i}",
                "text": f"Document number {i} about photosynthesis and the water cycle.",
                "language": "en",
                "url": None if i < late else f"https://example.org/{i}",
                "year": None if i < late else 2020 + i % 5,
                "metadata": {
                    "source": {"crawl": "CC-MAIN-2024-33", "offset": i * 1000},
                    "tags": [] if i < late else ["science", "ü"],
                    "quality": None if i < late else {"ratio": 0.5},
                },
            }
        )
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("language", pa.string()),
            ("url", pa.string()),
            ("year", pa.int32()),
            (
                "metadata",
                pa.struct(
                    [
                        ("source", pa.struct([("crawl", pa.string()), ("offset", pa.int64())])),
                        ("tags", pa.list_(pa.string())),
                        ("quality", pa.struct([("ratio", pa.float32())])),
                    ]
                ),
            ),
        ]
    )
    return pa.Table.from_pylist(records, schema=schema)


def test_parquet_output_keeps_the_input_schema_with_late_nulls_and_nested_structs(
    tmp_path: Path, model_dir: Path
) -> None:
    table = _late_schema_table(40)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pq.write_table(table, corpus / "part-0.parquet", row_group_size=8)
    metrics = run(tmp_path, filter_params(corpus, model_dir))
    assert metrics["documents"]["kept"] == 40
    output = pq.read_table(tmp_path / "run" / "filtered" / "part-0.parquet")
    named = ["educational_score", "educational_int_score", "style_score", "style_int_score"]
    assert output.schema.names == [*table.schema.names, "scores", *named]
    for column in table.schema:
        assert output.schema.field(column.name).type == column.type, column.name
    assert output.schema.field("scores").type.value_type == pa.float64()
    assert [output.schema.field(name).type for name in named] == [pa.float64(), pa.int64()] * 2
    assert output.drop_columns(["scores", *named]).to_pylist() == table.to_pylist()
    assert output.column("year").to_pylist()[-3:] == [2022, 2023, 2024]
    assert all(len(s) == 2 for s in output.column("scores").to_pylist())


def test_parquet_inputs_with_different_schemas_stop_the_run_or_are_unified(tmp_path: Path, model_dir: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    first = _late_schema_table(4)
    pq.write_table(first, corpus / "a.parquet")
    second = pa.table({"id": ["x-1"], "text": ["A page with a new column."], "license": ["cc-by"]})
    pq.write_table(second, corpus / "b.parquet")
    params = filter_params(corpus, model_dir)
    with pytest.raises(MlfilterError) as error:
        run(tmp_path, params)
    assert f"{corpus / 'a.parquet'} and {corpus / 'b.parquet'}" in str(error.value)
    assert "filter.parquet_schema: unify" in str(error.value)

    run(tmp_path, dataclasses.replace(params, parquet_schema="unify"), "unified")
    a = pq.read_table(tmp_path / "unified" / "filtered" / "a.parquet")
    b = pq.read_table(tmp_path / "unified" / "filtered" / "b.parquet")
    assert a.schema.equals(b.schema) and "license" in a.schema.names and "metadata" in b.schema.names
    named = ["educational_score", "educational_int_score", "style_score", "style_int_score"]
    assert a.drop_columns(["scores", "license", *named]).to_pylist() == first.to_pylist()
    row = b.to_pylist()[0]
    assert row["license"] == "cc-by" and row["metadata"] is None
    assert [r for _, r in iter_records(str(corpus / "b.parquet"))] == [
        {k: v for k, v in row.items() if k in second.schema.names}
    ]
