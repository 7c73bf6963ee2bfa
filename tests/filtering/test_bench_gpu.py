"""The GPU benchmark runs in its tiny mode on a CPU, so it cannot rot between GPU runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "bench_filter_gpu.py"
ROW = re.compile(
    r"^(baseline|engine)\s+([\d.]+) docs/s\s+(\d+) tokens/s\s+busy\s+([\d.]+)%.*max \|score - baseline\| (\S+)$"
)


@pytest.mark.slow
def test_gpu_benchmark_tiny_mode_runs_on_cpu_and_both_sides_agree() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--dtype", "float32", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {m.group(1): m for line in result.stdout.splitlines() if (m := ROW.match(line.strip()))}
    assert set(rows) == {"baseline", "engine"}, result.stdout
    for row in rows.values():
        assert float(row.group(2)) > 0 and int(row.group(3)) > 0
        assert 0 < float(row.group(4)) <= 100, "busy fraction is a share of the wall time"
    assert float(rows["engine"].group(5)) <= 1e-4, "the engine must score like the pipeline"
    assert "engine tokenizer processes: 2" in result.stdout
