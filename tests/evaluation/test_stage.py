"""The evaluate stage end to end: in process, and through real DVC (repro, metrics, plots) in a temp repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import cohen_kappa_score

from mlfilter.cli import main
from mlfilter.records import iter_records
from mlfilter.scores import round_statistic
from tests.evaluation.helpers import annotation, write_annotations, write_records

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOPICS = [
    "Photosynthesis converts light into chemical energy inside the chloroplasts of plant cells.",
    "Limited offer: buy two pairs of shoes and get the third one free this weekend only!",
    "The derivative of a function measures how its output changes as its input changes.",
    "Celebrity gossip: who wore it best at last night's awards show?",
    "Die Zellteilung sorgt dafür, dass aus einer Zelle zwei Tochterzellen entstehen.",
    "Günstige Angebote für Ferienwohnungen an der Ostsee jetzt buchen.",
]


def write_project(root: Path, model_dir: Path) -> Path:
    """A project with the inputs of the evaluate stage: three annotators' annotations (two tasks),
    the sample, a labelled test split, gold labels and the trained model, plus params.yaml."""
    rng = np.random.default_rng(0)
    n = 48
    truth = rng.integers(0, 6, n)
    languages = ["en" if i % 3 else "de" for i in range(n)]
    write_records(
        root / "data" / "sample" / "part-00000.jsonl.zst",
        [{"id": f"doc-{i}", "text": TOPICS[i % len(TOPICS)] + f" #{i}", "language": languages[i]} for i in range(n)],
    )
    edu_scores = {}
    for a, annotator in enumerate(("alpha", "beta", "gamma")):
        records = []
        for i in range(n):
            edu = [int(np.clip(truth[i] + rng.integers(-1, 2), 0, 5)) for _ in range(2)]
            if a == 2 and i % 10 == 0:
                edu = [None, None]
            edu_scores[(annotator, i)] = edu
            toxic = [int(np.clip(truth[i] // 2 + rng.integers(-1, 2), 0, 2))]
            records.append(annotation(f"doc-{i}", annotator, {"educational": edu, "toxic": toxic}))
        write_annotations(root / "data" / "annotations", annotator, records, per_shard=30)
    test = [
        {
            "id": f"doc-{i}",
            "text": TOPICS[i % len(TOPICS)] + f" #{i}",
            "language": languages[i],
            "scores": [int(truth[i]), int(truth[i] // 2)],
            "agreement": {},
        }
        for i in range(0, n, 2)
    ]
    write_records(root / "data" / "splits" / "test.jsonl.zst", test)
    train = [
        {
            "id": f"doc-{i}",
            "text": TOPICS[i % len(TOPICS)] + f" #{i}",
            "language": languages[i],
            "scores": [int(truth[i]), int(truth[i] // 2)],
        }
        for i in range(1, n, 2)
    ]
    write_records(root / "data" / "splits" / "train.jsonl.zst", train)
    write_records(
        root / "data" / "labels" / "gold.jsonl.zst",
        [{"id": f"doc-{i}", "scores": [int(truth[i]), None], "n": [1, 0]} for i in range(0, n, 3)],
    )
    shutil.copytree(model_dir, root / "models" / "annotator" / "final")
    (root / "params.yaml").write_text(
        yaml.safe_dump(
            {
                "seed": 7,
                "tasks": [
                    {"name": "educational", "prompt": "p.yaml", "num_targets": 6, "threshold": 3},
                    {"name": "toxic", "prompt": "t.yaml", "num_targets": 3, "threshold": 1},
                ],
                "aggregate": {"task_names": {}},
                "annotate": {
                    "annotators": {
                        name: {"backend": "import", "import_paths": [f"data/annotations/{name}"]}
                        for name in ("alpha", "beta", "gamma")
                    }
                },
                "evaluate": {
                    "bootstrap_samples": 100,
                    "min_language_documents": 10,
                    "max_length": 64,
                    "device": "cpu",
                    "sweep_step": 0.25,
                },
            },
            sort_keys=False,
        )
    )
    return root


def test_evaluate_writes_metrics_report_plots_and_pngs(tmp_path: Path, model_dir: Path, monkeypatch) -> None:
    project = write_project(tmp_path, model_dir)
    monkeypatch.chdir(project)
    assert main(["evaluate"]) == 0
    out = project / "reports" / "evaluate"
    metrics = json.loads((out / "metrics.json").read_text())
    report = json.loads((out / "report.json").read_text())

    agreement = metrics["agreement"]["educational"]
    assert agreement["raters"] == 3 and agreement["documents"] == 48
    full = report["reliability"]["educational"]["agreement"]
    assert agreement["krippendorff_alpha_ordinal"] == full["krippendorff_alpha_ordinal"]
    ci = full["confidence_intervals"]["krippendorff_alpha_ordinal"]
    assert ci["low"] <= full["krippendorff_alpha_ordinal"] <= ci["high"]
    assert report["reliability"]["educational"]["per_language"]["de"]["documents"] == 16
    assert report["annotations"]["annotators"]["educational"]["gamma"]["invalid_by_reason"] == {"null_score": 10}

    # Self-agreement: each annotator's two educational generations against each other (toxic has one).
    generations = [
        record["scores"]["educational"]
        for path in sorted((project / "data" / "annotations" / "alpha").iterdir())
        for _, record in iter_records(str(path))
    ]
    first, second = np.array(generations).T
    own = metrics["self_agreement"]["educational"]["alpha"]
    assert own["documents"] == 48
    assert own["cohen_kappa_quadratic"] == pytest.approx(cohen_kappa_score(first, second, weights="quadratic"))
    assert own["exact_agreement"] == pytest.approx(np.mean(first == second))
    assert set(metrics["self_agreement"]) == {"educational"}
    assert report["reliability"]["educational"]["self_agreement"]["gamma"]["documents"] == 48 - 5

    classifier = metrics["classifier"]["educational"]
    assert classifier["documents"] == 24
    assert set(classifier) >= {"mae", "spearman", "macro_f1", "f1_at_threshold", "label_ceiling_ratio"}
    ceiling = report["classifier"]["educational"]["label_ceiling"]["cohen_kappa_quadratic"]
    assert ceiling["mean_annotator_pair"] == full["cohen_kappa_quadratic"]
    assert set(report["classifier"]["educational"]["binary"]) == {"1", "2", "3", "4", "5"}
    assert metrics["gold"]["educational"]["alpha"]["documents"] == 16
    assert metrics["gold"]["educational"]["classifier"]["documents"] == 8
    assert "toxic" not in metrics["gold"]
    assert metrics["documents"]["test"] == 24
    assert metrics["throughput"]["inference_docs_per_s"] > 0

    confusion = json.loads((out / "plots" / "confusion.json").read_text())
    educational = [row for row in confusion if row["task"] == "educational"]
    assert len(educational) == 24 and set(educational[0]) == {"task", "label", "prediction"}
    sweep = json.loads((out / "plots" / "threshold_sweep.json").read_text())
    toxic_cuts = [row["raw_cut"] for row in sweep if row["task"] == "toxic" and row["measure"] == "kept_fraction"]
    assert toxic_cuts == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    distribution = (out / "plots" / "score_distribution.csv").read_text().splitlines()
    assert distribution[0] == "task,annotator,score,count"
    gamma = [line.split(",") for line in distribution[1:] if line.startswith("educational,gamma,")]
    assert [int(row[2]) for row in gamma] == [0, 1, 2, 3, 4, 5]
    assert sum(int(row[3]) for row in gamma) == 48 - 5
    pngs = sorted(p.name for p in (out / "png").iterdir())
    for expected in (
        "educational_score_distributions.png",
        "educational_agreement_heatmap.png",
        "educational_confusion_alpha_vs_beta.png",
        "educational_confusion_classifier.png",
        "educational_threshold_sweep.png",
        "educational_confusion_gold_vs_alpha.png",
        "toxic_score_differences_histogram.png",
    ):
        assert expected in pngs
        assert (out / "png" / expected).read_bytes().startswith(PNG_MAGIC)
    assert sorted(report["files"]) == report["files"] and len(report["files"]) > 20

    # Headline figures for dvc metrics: one file per figure, one key per task, rounded, nothing machine-dependent.
    headline = project / "reports" / "metrics" / "evaluate"
    figures = {path.stem: json.loads(path.read_text()) for path in headline.glob("*.json")}
    assert set(figures) == {
        "agreement_alpha_ordinal",
        "agreement_kappa_quadratic",
        "test_spearman",
        "test_mae",
        "test_f1_at_threshold",
        "margin_spearman",
        "label_ceiling_ratio",
    }
    assert all(set(columns) == {"educational", "toxic"} for columns in figures.values())
    assert figures["test_spearman"]["educational"] == round_statistic(classifier["spearman"])
    assert figures["agreement_alpha_ordinal"]["educational"] == round_statistic(agreement["krippendorff_alpha_ordinal"])
    assert figures["margin_spearman"] == {"educational": None, "toxic": None}, "no --train, so no baseline to beat"

    # One annotator: no agreement (with the reason), the classifier is still evaluated.
    one_args = ["--annotations", "data/annotations/alpha", "--output", "reports/one", "--metrics", "reports/one/head"]
    assert main(["evaluate", *one_args]) == 0
    one = json.loads((project / "reports" / "one" / "report.json").read_text())
    reason = one["reliability"]["educational"]["undefined"]["agreement"]
    assert "agreement needs at least 2 raters, found 1 (alpha)" in reason
    assert "agreement" not in json.loads((project / "reports" / "one" / "metrics.json").read_text())
    ceiling = one["classifier"]["educational"]["label_ceiling"]["cohen_kappa_quadratic"]
    assert ceiling["ratio"] is None and "fewer than two annotators" in ceiling["undefined"]
    one_summary = json.loads((project / "reports" / "one" / "metrics.json").read_text())["classifier"]["educational"]
    assert one_summary["label_ceiling_ratio"] is None
    assert one_summary["label_ceiling_ratio_reason"] == ceiling["undefined"]
    one_head = project / "reports" / "one" / "head"
    assert json.loads((one_head / "label_ceiling_ratio.json").read_text()) == {"educational": None, "toxic": None}
    assert json.loads((one_head / "agreement_alpha_ordinal.json").read_text()) == {"educational": None, "toxic": None}
    assert (project / "reports" / "one" / "png" / "educational_score_distributions.png").exists()


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_dvc_repro_metrics_and_plots(tmp_path: Path, model_dir: Path) -> None:
    project = write_project(tmp_path, model_dir)
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stage = pipeline["stages"]["evaluate"]
    (project / "dvc.yaml").write_text(yaml.safe_dump({"plots": pipeline["plots"], "stages": {"evaluate": stage}}))
    for dep in stage["deps"]:
        if dep.startswith(("stages/", "src/")):
            source, target = ROOT / dep, project / dep
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, target)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    dvc = str(Path(sys.executable).parent / "dvc")
    run(["git", "init", "-q"], project, env)
    run([dvc, "init", "-q"], project, env)
    shutil.copytree(ROOT / ".dvc" / "plots", project / ".dvc" / "plots")  # the custom plot templates
    run([dvc, "repro", "--single-item", "evaluate"], project, env)

    metrics = json.loads(run([dvc, "metrics", "show", "--json"], project, env).stdout)
    shown = metrics[""]["data"]
    assert "reports/evaluate/metrics.json" not in shown, "the summary holds timings: a report, not a metric"
    assert set(shown["reports/metrics/evaluate/margin_spearman.json"]["data"]) == {"educational", "toxic"}
    assert set(shown["reports/metrics/evaluate/test_mae.json"]["data"]) == {"educational", "toxic"}
    summary = json.loads((project / "reports" / "evaluate" / "metrics.json").read_text())
    assert summary["baseline"]["educational"]["documents"] == 24
    assert set(summary["margin_over_baseline"]["toxic"]) >= {"spearman", "mae", "f1_at_threshold", "macro_f1"}

    plots = json.loads(run([dvc, "plots", "show", "--json"], project, env).stdout)
    assert "errors" not in plots
    ids = set(plots["data"])
    for expected in (
        "reports/evaluate/plots/confusion.json",
        "reports/evaluate/plots/threshold_sweep.json",
        "reports/evaluate/plots/score_distribution.csv",
    ):
        assert expected in ids, sorted(ids)
        spec = plots["data"][expected][0]
        assert spec["type"] == "vega" and spec["content"]["data"]["values"], expected
        assert spec["content"]["facet"]["row"]["field"] == "task", expected
    confusion = plots["data"]["reports/evaluate/plots/confusion.json"][0]["content"]
    assert len(confusion["data"]["values"]) == 24 + 24
    sweep = plots["data"]["reports/evaluate/plots/threshold_sweep.json"][0]["content"]
    assert {row["measure"] for row in sweep["data"]["values"]} == {"precision", "recall", "f1", "kept_fraction"}
    run([dvc, "plots", "show", "-o", "rendered"], project, env)
    assert (project / "rendered" / "index.html").stat().st_size > 1000
