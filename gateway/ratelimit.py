"""Fixed-window rate limits behind one interface: in process memory, or shared in Redis.

A window starts at a key's first hit and lasts `window_seconds`; the hit that would
exceed `limit` inside it is refused with the seconds until the window ends. Memory
suits one replica; with REDIS_URL every replica counts in the same keys.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.logs import log_fields
from gateway.settings import RateLimit

log = logging.getLogger("gateway.ratelimit")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: int = 0


class RateLimiter(Protocol):
    async def hit(self, key: str, rule: RateLimit) -> Decision:
        """Count one hit on `key` and say whether it is within `rule`."""
        ...

    async def close(self) -> None: ...


def _decide(count: int, rule: RateLimit, remaining_seconds: float) -> Decision:
    if count <= rule.limit:
        return Decision(allowed=True)
    return Decision(allowed=False, retry_after_seconds=max(1, math.ceil(remaining_seconds)))


class MemoryRateLimiter:
    """Counters in a dict; one event loop touches it, so no lock is needed (no await inside)."""

    _SWEEP_EVERY = 1024

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window end, hits)
        self._hits_since_sweep = 0

    async def hit(self, key: str, rule: RateLimit) -> Decision:
        now = self._clock()
        self._sweep(now)
        ends_at, count = self._windows.get(key, (0.0, 0))
        if now >= ends_at:
            ends_at, count = now + rule.window_seconds, 0
        count += 1
        self._windows[key] = (ends_at, count)
        return _decide(count, rule, ends_at - now)

    def _sweep(self, now: float) -> None:
        """Drop expired windows now and then, so memory stays bounded by active keys."""
        self._hits_since_sweep += 1
        if self._hits_since_sweep < self._SWEEP_EVERY:
            return
        self._hits_since_sweep = 0
        self._windows = {k: v for k, v in self._windows.items() if v[0] > now}

    async def close(self) -> None:
        self._windows.clear()


# INCR and the expiry in one atomic step: a crash between them cannot leave a key without a TTL.
_HIT_SCRIPT = """
local hits = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {hits, ttl}
"""


class RedisRateLimiter:
    """Counters in Redis, shared by every gateway replica pointed at the same REDIS_URL.

    If Redis is unreachable the hit is allowed and a warning is logged: an outage of the
    limit store should not take the API down (the wallet keeps its own login lockout).
    """

    def __init__(self, url: str, *, prefix: str = "gateway:ratelimit:") -> None:
        self._redis: Redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._prefix = prefix
        self._script = self._redis.register_script(_HIT_SCRIPT)

    async def hit(self, key: str, rule: RateLimit) -> Decision:
        window_ms = rule.window_seconds * 1000
        try:
            hits, ttl_ms = await self._script(keys=[self._prefix + key], args=[window_ms])
        except (RedisError, OSError) as exc:
            log_fields(log, "rate limit store unavailable", logging.WARNING, error=str(exc))
            return Decision(allowed=True)
        return _decide(int(hits), rule, int(ttl_ms) / 1000)

    async def close(self) -> None:
        await self._redis.aclose()


def build_rate_limiter(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()
