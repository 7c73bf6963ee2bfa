"""Fixtures shared by several test packages, and the test processes' share of the cores."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, give each worker's torch (and its subprocesses) its share of the cores.

    torch starts one intra-op thread per core; ``-n 2`` on 2 cores would run 4 threads that spin against
    each other. Set before any test module imports torch; an explicit ``OMP_NUM_THREADS`` wins.
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray with 2 CPUs (what the test machines have) for the tests of one module, shut down after them."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'mlfilter[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
