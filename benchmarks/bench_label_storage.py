"""DVC cache bytes of the demo's labels and splits: zstd JSON Lines (now) against plain JSON Lines (before).

The sample is the demo's: ``params.yaml``'s sample section on ``data/demo`` (real Apache httpd pages, 7
languages), drawn here. Two stand-in annotators score every document (seeded; an LLM is not needed, as
the texts, not the scores, take the bytes), then the aggregate and split stages' functions run once,
writing ``labels.jsonl.zst`` and ``{train,val,test}.jsonl.zst``. The baseline is the same records
uncompressed: the bytes the former ``labels.jsonl`` and ``{train,val,test}.jsonl`` held. Sample, baseline
and compressed outputs are ``dvc add``-ed in one temporary repository; the sizes printed are the ones
DVC records for each (the bytes each adds to the cache), side by side with their ratios.

    python benchmarks/bench_label_storage.py
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from mlfilter.labels.build import build_labels
from mlfilter.labels.split import SPLITS, split_labels, split_path
from mlfilter.params import load_section, load_tasks
from mlfilter.records import RecordWriter, expand_inputs, iter_records, open_binary
from mlfilter.sampling.pipeline import run_sample

REPO = Path(__file__).resolve().parents[1]
ANNOTATORS = ("stand_in_a", "stand_in_b")


def dvc_size(repo: Path, folder: str) -> int:
    """``dvc add`` a folder of ``repo`` and return the size DVC records for it (bytes)."""
    subprocess.run(["dvc", "add", "-q", folder], cwd=repo, check=True)
    return int(yaml.safe_load((repo / f"{folder}.dvc").read_text())["outs"][0]["size"])


def main() -> None:
    os.chdir(REPO)  # params.yaml names the demo corpus relative to the repository
    tasks = load_tasks("params.yaml")
    with tempfile.TemporaryDirectory(prefix="bench-label-storage-") as scratch:
        root = Path(scratch)
        params = dataclasses.replace(load_section("sample", "params.yaml"), work_dir=str(root / "work"))
        run_sample(params, load_section("seed", "params.yaml"), root / "repo" / "sample", root / "sample.json")
        ids = [
            record["id"] for path in expand_inputs([str(root / "repo" / "sample")]) for _, record in iter_records(path)
        ]
        rng = random.Random(0)
        for name in ANNOTATORS:
            with RecordWriter(root / "annotations" / name / "part-00000.jsonl.zst") as writer:
                for doc_id in ids:
                    scores = {task.name: [rng.randrange(task.num_targets)] for task in tasks}
                    writer.write({"id": doc_id, "annotator": name, "scores": scores})
        after = root / "repo" / "after"
        build_labels(
            annotations=[str(root / "annotations")],
            sample=[str(root / "repo" / "sample")],
            labels_path=after / "labels.jsonl.zst",
            gold_path=root / "gold.jsonl.zst",
            tasks=tasks,
            params=load_section("aggregate", "params.yaml"),
        )
        split_labels(
            labels=str(after / "labels.jsonl.zst"),
            out_dir=after,
            tasks=tasks,
            params=load_section("split", "params.yaml"),
        )
        before = root / "repo" / "before"
        before.mkdir()
        for path in [after / "labels.jsonl.zst", *(split_path(after, name) for name in SPLITS)]:
            with open_binary(str(path)) as compressed, open(before / path.name[: -len(".zst")], "wb") as out:
                shutil.copyfileobj(compressed, out)
        for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
            subprocess.run(command, cwd=root / "repo", check=True)
        sizes = {folder: dvc_size(root / "repo", folder) for folder in ("sample", "before", "after")}
    print(f"demo sample: {len(ids)} documents, {sizes['sample']:,} bytes in the DVC cache (zstd shards)")
    print(f"{'labels + 3 splits':<28}{'DVC cache bytes':>16}{'× sample':>10}")
    for label, folder in (("plain JSONL (before)", "before"), ("zstd JSONL (now)", "after")):
        print(f"{label:<28}{sizes[folder]:>16,}{sizes[folder] / sizes['sample']:>10.2f}")
    print(f"ratio before / now: {sizes['before'] / sizes['after']:.2f}×")


if __name__ == "__main__":
    main()
