"""In-process fixed-window counters (thread-safe), for limits a single process enforces."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class WindowCounter:
    """Counts events per key in fixed windows of `window_seconds`; at most `limit` each."""

    def __init__(
        self,
        *,
        limit: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._counts: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> float | None:
        """Seconds until `key` may act again, or None if it is under the limit now."""
        with self._lock:
            start, count = self._current(key)
            if count < self._limit:
                return None
            return max(0.0, start + self._window - self._clock())

    def hit(self, key: str) -> float | None:
        """Count one event; returns retry-after seconds if this event is over the limit."""
        with self._lock:
            start, count = self._current(key)
            if count >= self._limit:
                return max(0.0, start + self._window - self._clock())
            self._counts[key] = (start, count + 1)
            return None

    def reset(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def _current(self, key: str) -> tuple[float, int]:
        now = self._clock()
        start, count = self._counts.get(key, (now, 0))
        if now - start >= self._window:
            start, count = now, 0
        if len(self._counts) >= self._max_keys:
            self._evict(now)
        return start, count

    def _evict(self, now: float) -> None:
        expired = [k for k, (s, _) in self._counts.items() if now - s >= self._window]
        for key in expired or list(self._counts)[: self._max_keys // 10]:
            del self._counts[key]


def ceil_seconds(seconds: float) -> int:
    """Retry-After is whole seconds, never 0 while still limited."""
    return max(1, math.ceil(seconds))
