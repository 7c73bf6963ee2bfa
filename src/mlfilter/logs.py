"""One logging setup for every stage: console plus a rotating, multi-process-safe log file."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from concurrent_log_handler import ConcurrentRotatingFileHandler
from tqdm.auto import tqdm

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
_SECRET_ENV = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD)$")


_BEARER = re.compile(r"(Bearer\s+)[^\s\"',;]+", re.IGNORECASE)


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with secrets replaced by ``***``: values of secret-looking environment variables
    (``*_API_KEY``, ``*_TOKEN``…), the ``extra`` values (e.g. a key read from a custom variable), and
    any ``Bearer <token>`` (a server that echoes the ``Authorization`` header)."""
    secrets = [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 6]
    secrets += [v for v in extra if v and len(v) >= 6]
    for secret in secrets:
        text = text.replace(secret, "***")
    return _BEARER.sub(r"\1***", text)


class RedactSecrets(logging.Filter):
    """Mask secrets (see :func:`redact`) in log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(stage: str, log_dir: str | os.PathLike[str] = "logs", level: str | int = "INFO") -> logging.Logger:
    """Configure the root logger once per process and return the logger named ``mlfilter.<stage>``.

    Log lines go to stderr and to ``<log_dir>/mlfilter.log`` (rotated at 10 MB, 5 backups, safe when
    several processes write at once). Secrets found in the environment are masked.
    """
    root = logging.getLogger()
    if not any(getattr(h, "_mlfilter", False) for h in root.handlers):
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        formatter = logging.Formatter(LOG_FORMAT)
        console = logging.StreamHandler()
        file_handler = ConcurrentRotatingFileHandler(
            os.path.join(os.fspath(log_dir), "mlfilter.log"), maxBytes=10 * 1024 * 1024, backupCount=5
        )
        for handler in (console, file_handler):
            handler.setFormatter(formatter)
            handler.addFilter(RedactSecrets())
            handler._mlfilter = True  # type: ignore[attr-defined]
            root.addHandler(handler)
        for noisy in ("httpx", "urllib3", "filelock", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    root.setLevel(level)
    return logging.getLogger(f"mlfilter.{stage}")


#: A bar redraws at most once a second, on any progress at all (``miniters=1``): tqdm's default adaptive
#: ``miniters`` learns from a burst of fast steps to wait for many more before the next redraw.
_REDRAW_S = 1.0


def progress_enabled() -> bool:
    """False when ``MLFILTER_PROGRESS=0`` (tests, logs read by machines): then no bar is drawn."""
    return os.environ.get("MLFILTER_PROGRESS", "1") != "0"


def progress_bar(*, desc: str, total: float, unit: str, unit_scale: bool = False) -> tqdm:
    """A tqdm bar of ``total`` steps of ``unit`` to ``update`` by hand, labelled ``desc`` ("<stage>: <what>").

    It shows the count, rate and ETA, redrawn at most once a second. No bar is drawn (the returned bar is
    disabled but still counts) when ``MLFILTER_PROGRESS=0`` or for a one-step loop (``total <= 1``).
    """
    return tqdm(
        desc=desc,
        total=total,
        unit=unit,
        unit_scale=unit_scale,
        mininterval=_REDRAW_S,
        miniters=1,
        disable=not progress_enabled() or total <= 1,
        dynamic_ncols=True,
    )


def quiet_model_loading() -> None:
    """Turn off the bars transformers and huggingface_hub draw while loading weights ("Loading weights"):
    unlabelled, and over in a second for the models a stage loads. Call before ``from_pretrained``."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def progress(iterable: Iterable[T], *, desc: str, total: int, unit: str) -> Iterator[T]:
    """``iterable`` through a :func:`progress_bar` of ``total`` steps (closed when the iteration ends)."""
    with progress_bar(desc=desc, total=total, unit=unit) as bar:
        for item in iterable:
            yield item
            bar.update()
