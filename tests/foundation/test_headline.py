"""Headline figures: the one rounding rule for statistics, the metrics folders, honest values on degenerate input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mlfilter.annotation.report import AnnotationReport
from mlfilter.annotation.report import headline as annotate_headline
from mlfilter.filtering.report import CorpusSummary, build_metrics
from mlfilter.filtering.report import headline as filter_headline
from mlfilter.labels.report import aggregate_headline, split_headline
from mlfilter.reports import ALL_TASKS, write_headline
from mlfilter.scores import round_statistic


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.123456, 0.1235),
        (-0.123456, -0.1235),
        (0.0012345, 0.0012),  # at most 4 decimals
        (1.23456, 1.235),  # 4 significant digits
        (12345.6, 12350.0),
        (0.99995, 1.0),
        (0.00005, 0.0001),  # half up, not half to even
        (0.00015, 0.0002),
        (-0.00005, 0.0),  # half up is towards +infinity
        (3e-17, 0.0),  # float noise around zero is no figure
        (0.1 + 0.2, 0.3),
        (0.0, 0.0),
    ],
)
def test_round_statistic(value: float, expected: float) -> None:
    assert round_statistic(value) == expected
    assert json.dumps(round_statistic(value)) == json.dumps(expected)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_round_statistic_refuses_undefined_values(value: float) -> None:
    with pytest.raises(ValueError, match="null with a reason"):
        round_statistic(value)


def test_write_headline_writes_one_rounded_file_per_figure_and_removes_stale_ones(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "metrics" / "evaluate"
    folder.mkdir(parents=True)
    (folder / "retired_figure.json").write_text('{"educational": 1}')
    (folder / "notes.txt").write_text("not a figure")
    write_headline(
        folder,
        {
            "test_spearman": {"educational": 0.712345678, "adult": None},
            "documents": {ALL_TASKS: 1234567},
            "mode": {ALL_TASKS: "frozen"},
            "mean": {"educational": np.float64(2.0 / 3.0)},
        },
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "documents.json",
        "mean.json",
        "mode.json",
        "notes.txt",
        "test_spearman.json",
    ]
    assert json.loads((folder / "test_spearman.json").read_text()) == {"educational": 0.7123, "adult": None}
    assert json.loads((folder / "documents.json").read_text()) == {"all": 1234567}, "counts are exact"
    assert json.loads((folder / "mode.json").read_text()) == {"all": "frozen"}
    assert json.loads((folder / "mean.json").read_text()) == {"educational": 0.6667}
    with pytest.raises(ValueError, match="null with a reason"):
        write_headline(folder, {"broken": {"educational": math.nan}})


def test_sample_split_and_aggregate_headlines_hold_counts_and_means() -> None:
    from mlfilter.sampling.pipeline import headline as sample_headline

    sample = {"records": {"seen": 1699}, "documents_extracted": 836, "documents_kept": 255, "throughput": {"s": 1}}
    assert sample_headline(sample) == {
        "records_read": {ALL_TASKS: 1699},
        "documents_extracted": {ALL_TASKS: 836},
        "documents_kept": {ALL_TASKS: 255},
    }
    split = {"splits": {"train": {"count": 13}, "val": {"count": 5}, "test": {"count": 6}}, "docs_per_second": 9.0}
    assert split_headline(split) == {
        "train_documents": {ALL_TASKS: 13},
        "val_documents": {ALL_TASKS: 5},
        "test_documents": {ALL_TASKS: 6},
    }
    aggregate = {
        "documents": {"seen": 30, "kept": 24},
        "tasks": {"educational": {"mean_label": 1.5}, "adult": {"mean_label": None}},
        "seconds": 0.08,
    }
    assert aggregate_headline(aggregate) == {
        "documents_labelled": {ALL_TASKS: 24},
        "mean_label": {"educational": 1.5, "adult": None},
    }


def test_annotate_headline_and_report_have_no_fraction_of_nothing() -> None:
    report = AnnotationReport("a", "local", "m", "generate", ["educational", "adult"])
    report.add_record(
        {
            "id": "d1",
            "status": {"educational": ["ok", "no_score", "ok", "ok"]},
            "scores": {"educational": [2.5, None, 1.5, 3.0]},
            "prompt": {"educational": {"language": "en"}},
        }
    )
    report.documents.keep()
    as_dict = report.as_dict(seconds=2.0)
    assert as_dict["generations"]["invalid_fraction"] == {"educational": 0.25, "adult": None}
    # scores are histogrammed by the one rounding rule: 2.5 → 3 and 1.5 → 2 (half up, not half to even)
    assert as_dict["scores"]["educational"] == {"2": 1, "3": 2}
    assert annotate_headline(as_dict) == {
        "documents": {ALL_TASKS: 1},
        "valid_fraction": {"educational": 0.75, "adult": None},
    }


def test_filter_report_of_an_empty_corpus_has_null_fractions_with_reasons() -> None:
    summary = CorpusSummary(["educational"], [np.linspace(0, 5, 6)])
    metrics = build_metrics(summary, {})
    assert metrics["kept_fraction"] == {"documents": None, "tokens": None}
    assert metrics["scores"]["educational"]["mean"] is None
    assert metrics["undefined"] == {
        "kept_fraction.documents": "no document entered the filter",
        "kept_fraction.tokens": "the documents read hold no tokens",
        "scores.mean": "no document was scored",
    }
    assert filter_headline(metrics) == {
        "documents": {ALL_TASKS: 0},
        "kept_fraction": {ALL_TASKS: None},
        "mean_score": {"educational": None},
    }
