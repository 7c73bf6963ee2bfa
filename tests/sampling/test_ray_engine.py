"""``sample.engine: ray`` on a real local Ray cluster (2 CPUs): the local engine's output, byte for byte,
and a ``kill -9`` of the driver mid-run followed by a rerun that redoes no finished file."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlfilter.sampling.params import SampleRayParams
from mlfilter.sampling.pipeline import run_sample
from tests.sampling.conftest import make_params
from tests.sampling.helpers import WarcFile, multilingual_warc, texts

pytest.importorskip("ray", reason="Ray is not installed (pip install 'mlfilter[ray]')")

#: One xdist worker runs every Ray module, one local Ray at a time (make test runs with -n).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]
ROOT = Path(__file__).resolve().parents[2]
SEED = 13
TARGETS = {"en": 9, "de": 7, "es": 7, "sr": 7, "ko": 2, "ja": 2}


def corpus(root: Path, files: int) -> list[str]:
    """``files`` WARC files (in turn multilingual HTML with other texts and URLs) plus one WET file."""
    paths = [str(multilingual_warc(root / f"w{i:02d}.warc.gz", prefix=f"f{i}/", start=i % 7)) for i in range(files)]
    wet = WarcFile()
    for language in ("en", "de", "es", "sr"):
        for i, text in enumerate(texts(language)):
            wet.conversion(f"https://{language}.example.com/wet/{i}", text)
    paths.append(str(wet.write(root / "x.warc.wet.gz")))
    return paths


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_ray_engine_output_is_byte_identical_to_local(tmp_path: Path, local_ray: None) -> None:
    paths = corpus(tmp_path / "in", 5)
    local = make_params(tmp_path, *paths, targets=TARGETS, workers=2, work_dir=str(tmp_path / "work-local"))
    on_ray = dataclasses.replace(local, engine="ray", ray=SampleRayParams(), work_dir=str(tmp_path / "work-ray"))
    local_report = run_sample(local, SEED, tmp_path / "local", tmp_path / "local.json")
    ray_report = run_sample(on_ray, SEED, tmp_path / "ray", tmp_path / "ray.json")

    assert local_report["documents_kept"] == sum(TARGETS.values())
    assert shard_bytes(tmp_path / "ray") == shard_bytes(tmp_path / "local")
    without_throughput = [{k: v for k, v in r.items() if k != "throughput"} for r in (local_report, ray_report)]
    assert without_throughput[0] == without_throughput[1]
    workers = ray_report["throughput"]["workers"]
    assert ray_report["throughput"]["engine"] == "ray"
    assert sum(w["files"] for w in workers.values()) == len(paths)
    assert sum(w["records"] for w in workers.values()) == ray_report["records"]["seen"]
    assert sum(w["documents"] for w in workers.values()) == ray_report["documents_extracted"]
    assert json.loads((tmp_path / "ray.json").read_text())["throughput"]["workers"] == workers


DRIVER = """
import json, sys
from mlfilter.sampling.params import SampleParams, SampleRayParams, SourceParams
from mlfilter.sampling.pipeline import run_sample
spec = json.loads(sys.argv[1])
params = SampleParams(
    sources=(SourceParams(type="warc", paths=tuple(spec["paths"])),), targets=spec["targets"],
    extractor="trafilatura", min_chars=100, retries=0, work_dir=spec["work_dir"], engine="ray",
    ray=SampleRayParams(cpus_per_task=1),
)
run_sample(params, 13, spec["output"], spec["report"])
"""


def test_kill_9_of_the_driver_then_a_rerun_redoes_no_finished_file(tmp_path: Path, local_ray: None) -> None:
    paths = corpus(tmp_path / "in", 15)
    work = tmp_path / "work"
    spec = {
        "paths": paths,
        "targets": TARGETS,
        "work_dir": str(work),
        "output": str(tmp_path / "killed"),
        "report": str(tmp_path / "killed.json"),
    }
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(ROOT / "src"), MLFILTER_PROGRESS="0")
    # The driver starts its own local Ray (2 CPUs); its process group holds that Ray's processes too.
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER), json.dumps(spec)],
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(work.glob("*.json"))) < 2:
            assert driver.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no file finished in time"
            time.sleep(0.02)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # the killed driver's own Ray, and nothing else
    finished = {path: path.stat().st_mtime_ns for path in work.glob("*.json")}
    assert 2 <= len(finished) < len(paths), "the kill came after the end"
    assert not (tmp_path / "killed").exists()

    params = make_params(
        tmp_path, *paths, targets=TARGETS, extractor="trafilatura", work_dir=str(work), engine="ray", keep_work=True,
        ray=SampleRayParams(),
    )  # fmt: skip
    rerun = run_sample(params, SEED, tmp_path / "rerun", tmp_path / "rerun.json")

    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path.name} was redone"
    assert rerun["files"]["reused"] >= len(finished)
    assert rerun["files"]["processed"] == len(paths) - rerun["files"]["reused"]
    assert sum(w["files"] for w in rerun["throughput"]["workers"].values()) == rerun["files"]["processed"]
    uninterrupted = dataclasses.replace(params, engine="local", workers=2, work_dir=str(tmp_path / "w2"))
    run_sample(uninterrupted, SEED, tmp_path / "local", tmp_path / "local.json")
    assert shard_bytes(tmp_path / "rerun") == shard_bytes(tmp_path / "local")
