"""Fixtures shared by several test packages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray with 2 CPUs (what the test machines have) for the tests of one module, shut down after them."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'mlfilter[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
