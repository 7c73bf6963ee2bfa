"""Proxy-stratified sampling: equal allocation, exact inclusion probabilities, and the ``proxy_sample`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlfilter.classifiers.tfidf import TfidfClassifier, TfidfConfig
from mlfilter.cli import main
from mlfilter.records import iter_records
from mlfilter.sampling.proxy import allocate_equal, proxy_stratified_sample

REAL = Path(__file__).parents[1] / "training" / "data" / "fineweb_edu_sample.jsonl"


@pytest.mark.parametrize(
    ("sizes", "n", "expected"),
    [
        ([5, 100, 30, 2], 40, [5, 17, 16, 2]),  # small strata whole, the rest shared equally
        ([5, 100, 30, 2], 137, [5, 100, 30, 2]),  # everything
        ([0, 10, 10], 7, [0, 4, 3]),  # an empty stratum; the odd draw goes to a stratum with the most room
        ([10, 10, 10], 0, [0, 0, 0]),
    ],
)
def test_equal_allocation(sizes: list[int], n: int, expected: list[int]) -> None:
    assert allocate_equal(np.array(sizes), n).tolist() == expected


def test_inclusion_probabilities_are_the_drawn_share_of_each_stratum() -> None:
    ids = [f"doc-{i}" for i in range(1000)]
    scores = np.random.default_rng(0).gamma(1.0, 1.0, 1000)
    drawn = proxy_stratified_sample(ids, scores, edges=[1, 2, 3], sample_size=100, seed=5, pool_probability=0.5)
    assert drawn.selected.sum() == 100 and drawn.allocated.sum() == 100
    for h in range(4):
        members = drawn.stratum == h
        assert members.sum() == drawn.sizes[h]
        assert drawn.selected[members].sum() == drawn.allocated[h] == 25
        np.testing.assert_allclose(drawn.inclusion_probability[members], 0.5 * 25 / drawn.sizes[h])
    assert np.all(scores[drawn.stratum == 3] >= 3) and np.all(scores[drawn.stratum == 0] < 1)
    # The inverse-probability weights of the drawn documents add up to the population size, stratum by stratum.
    assert (1 / drawn.inclusion_probability[drawn.selected]).sum() == pytest.approx(1000 / 0.5)
    again = proxy_stratified_sample(ids, scores, edges=[1, 2, 3], sample_size=100, seed=5, pool_probability=0.5)
    assert np.array_equal(again.selected, drawn.selected)
    other = proxy_stratified_sample(ids, scores, edges=[1, 2, 3], sample_size=100, seed=6)
    assert not np.array_equal(other.selected, drawn.selected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"edges": [2, 1]}, "edges: expected increasing"),
        ({"sample_size": 11}, "sample size 11"),
        ({"pool_probability": 0.0}, "pool_probability"),
        ({"scores": [np.nan] + [1.0] * 9}, "1 NaN score"),
        ({"scores": [1.0] * 9}, r"expected shape \(10,\)"),
    ],
)
def test_bad_input_is_named(kwargs: dict, message: str) -> None:
    arguments = {"edges": [1.0], "sample_size": 5, "seed": 0, **kwargs}
    scores = np.array(arguments.pop("scores", np.arange(10.0)))
    with pytest.raises(ValueError, match=message):
        proxy_stratified_sample([f"d{i}" for i in range(10)], scores, **arguments)


def write_project(root: Path) -> tuple[Path, list[dict]]:
    """A pool of 40 real FineWeb-Edu documents, labels for half of them (round 1), and a params file."""
    rows = [json.loads(line) for line in REAL.read_text(encoding="utf-8").splitlines()]
    pool = root / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "language": "en"}) + "\n" for r in rows))
    labelled = rows[::2]
    (root / "train.jsonl").write_text(
        "".join(json.dumps({"id": r["id"], "text": r["text"], "scores": [r["score"]]}) + "\n" for r in labelled)
    )
    task = {"name": "educational", "prompt": "p.yaml", "num_targets": 6, "threshold": 3}
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 3, "tasks": [task]}))
    return root, rows


def test_proxy_sample_from_the_labels_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, _ = write_project(tmp_path)
    monkeypatch.chdir(project)
    pool = ["proxy_sample", "--pool", "pool.jsonl", "--train", "train.jsonl", "--size", "12", "--output", "round2"]
    options = ["--edges", "1.5,2.5", "--pool-probability", "0.1", "--report", "report.json"]
    assert main([*pool, *options]) == 0
    report = json.loads((project / "report.json").read_text())
    drawn = [record for path in sorted((project / "round2").iterdir()) for _, record in iter_records(str(path))]
    assert report["documents"] == {"seen": 40, "kept": 12, "not_sampled": 28}
    pool_sizes = [s["pool"] for s in report["strata"]]
    assert sum(pool_sizes) == 40 and len(drawn) == 12
    assert [s["drawn"] for s in report["strata"]] == allocate_equal(np.array(pool_sizes), 12).tolist()
    for record in drawn:
        score = record["metadata"]["proxy_score"]
        stratum = report["strata"][int(score >= 1.5) + int(score >= 2.5)]
        assert record["metadata"]["inclusion_probability"] == pytest.approx(stratum["inclusion_probability"])
        assert stratum["inclusion_probability"] == pytest.approx(0.1 * stratum["drawn"] / stratum["pool"])
    # The highest-scoring stratum (the rarest here) is over-represented against the pool.
    top = report["strata"][-1]
    assert 0 < top["pool"] < 40 / 3
    assert top["drawn"] / 12 > top["pool"] / 40


def test_proxy_sample_with_a_classifier_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, rows = write_project(tmp_path)
    model = TfidfClassifier.fit(
        [r["text"] for r in rows],
        np.array([[r["score"]] for r in rows], dtype=float),
        task_names=["educational"],
        num_targets=[6],
        config=TfidfConfig(min_df=1),
    )
    model.save_pretrained(project / "round1")
    monkeypatch.chdir(project)
    assert main(["proxy_sample", "--pool", "pool.jsonl", "--model", "round1", "--size", "10", "--output", "r2"]) == 0
    drawn = [record for path in sorted((project / "r2").iterdir()) for _, record in iter_records(str(path))]
    expected = dict(zip([r["id"] for r in rows], model.predict([r["text"] for r in rows])[:, 0], strict=True))
    for record in drawn:
        assert record["metadata"]["proxy_score"] == pytest.approx(expected[record["id"]])
    assert main(["proxy_sample", "--pool", "pool.jsonl", "--model", "round1", "--size", "41", "--output", "x"]) == 2
    assert (
        main(
            [
                "proxy_sample",
                "--pool",
                "pool.jsonl",
                "--model",
                "round1",
                "--size",
                "4",
                "--output",
                "y",
                "--task",
                "no",
            ]
        )
        == 2
    )
