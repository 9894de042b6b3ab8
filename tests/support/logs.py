"""Reading what the services log, in-process."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from common.logs import JsonFormatter


@contextmanager
def access_log_lines() -> Iterator[io.StringIO]:
    """The `grpc.access` log as JSON lines while the block runs (at INFO, whatever its
    level was; the level and handlers are restored after)."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("grpc.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
