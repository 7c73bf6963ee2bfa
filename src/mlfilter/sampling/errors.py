"""Errors of one input file of the sample, each with the reason it is counted under when skipped."""

from __future__ import annotations

from mlfilter.errors import MlfilterError


class InputFileError(MlfilterError, ValueError):
    """An input file cannot be read to its end; the message names the file (and the offset or line)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (str(self), self.reason)
