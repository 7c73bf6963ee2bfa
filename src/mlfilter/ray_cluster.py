"""The Ray cluster the sample and filter stages' Ray engines run on: joined, or started on this machine."""

from __future__ import annotations

from typing import Any

from mlfilter.errors import MlfilterError


def import_ray(setting: str) -> Any:
    """The ``ray`` module.

    Raises:
        MlfilterError: Ray is not installed; the message names ``setting`` (the param that asked for Ray).
    """
    try:
        import ray
    except ImportError:
        raise MlfilterError(f"{setting} 'ray' needs Ray: pip install 'mlfilter[ray]'") from None
    return ray


class RayCluster:
    """Context manager: joins the cluster at ``address`` (``None``: the one ``RAY_ADDRESS`` names, else a new
    local one) unless Ray is already initialised in this process, and shuts down on exit only what it started."""

    def __init__(self, address: str | None, setting: str) -> None:
        self.address = address
        self.setting = setting
        self._started = False

    def __enter__(self) -> Any:
        ray = import_ray(self.setting)
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            self._started = True
        return ray

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import_ray(self.setting).shutdown()
            self._started = False
