"""The one rate limiter of the gateway and the wallet: in process memory, or shared in Redis.

Algorithm: a sliding log. A key may have at most `limit` accepted events in ANY interval of
`window_seconds`, not merely per fixed window: a fixed window lets a burst at the end of one
window and another at the start of the next through (2x the limit within one window's time);
a token bucket / GCRA keeps the long-run rate but still lets capacity + refill (up to 2x)
through within one window. The log keeps one timestamp per accepted event (at most `limit`
per key, and the limits here are small), so the bound is exact. A refused event is not
recorded, so hammering does not extend the wait, and Retry-After is exact: the seconds until
the oldest accepted event leaves the window.

Memory suits one process (thread-safe, usable from sync code and from an event loop: nothing
awaits under its lock). With REDIS_URL every replica counts in the same sorted sets; the
check-and-add is one Lua script, so a burst spread over replicas cannot overshoot. Time comes
from an injected clock (tests drive it; Redis gets it as an argument), never from the server.

pyrate-limiter (in the lock file) was considered: its non-blocking acquire answers a bare bool
(no Retry-After), and its buckets leak from a background thread/task; it did not fit both.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.asyncio
from redis.exceptions import RedisError

from common.config import env_int
from common.logs import log_fields

log = logging.getLogger("ratelimit")

Clock = Callable[[], float]


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` events per `window_seconds`; a limit of 0 turns the check off."""

    limit: int
    window_seconds: int

    @property
    def enabled(self) -> bool:
        return self.limit > 0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: int = 0


ALLOWED = Decision(allowed=True)


def env_rate_limit(env: Mapping[str, str], name: str, default: RateLimit) -> RateLimit:
    """`NAME` is the count, `NAME_WINDOW_SECONDS` the window (e.g. LOGIN_RATE_LIMIT_PER_IP)."""
    return RateLimit(
        limit=env_int(env, name, default.limit),
        window_seconds=env_int(env, f"{name}_WINDOW_SECONDS", default.window_seconds, minimum=1),
    )


def ceil_seconds(seconds: float) -> int:
    """Retry-After is whole seconds, never 0 while still limited."""
    return max(1, math.ceil(seconds))


def _refused(wait_seconds: float) -> Decision:
    return Decision(allowed=False, retry_after_seconds=ceil_seconds(wait_seconds))


class RateLimiter(Protocol):
    """Synchronous limiter (the wallet's worker threads)."""

    def hit(self, key: str, rule: RateLimit) -> Decision:
        """Count one event on `key` if `rule` allows it; say whether it did."""
        ...

    def close(self) -> None: ...


class AsyncRateLimiter(Protocol):
    """The same for an event loop (the gateway)."""

    async def hit(self, key: str, rule: RateLimit) -> Decision: ...

    async def close(self) -> None: ...


# --- memory ---------------------------------------------------------------------------------


class MemoryRateLimiter:
    """Per-key deques of accepted event times, under one lock."""

    _SWEEP_EVERY = 1024

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._hits_since_sweep = 0
        self._longest_window = 0.0

    def hit(self, key: str, rule: RateLimit) -> Decision:
        if not rule.enabled:
            return ALLOWED
        with self._lock:
            now = self._clock()
            self._longest_window = max(self._longest_window, rule.window_seconds)
            self._sweep(now)
            times = self._logs.setdefault(key, deque())
            while times and times[0] <= now - rule.window_seconds:
                times.popleft()
            if len(times) < rule.limit:
                times.append(now)
                return ALLOWED
            return _refused(times[0] + rule.window_seconds - now)

    def _sweep(self, now: float) -> None:
        """Drop idle keys now and then, so memory stays bounded by the active ones. A key is
        idle when its newest event is older than the longest window in use."""
        self._hits_since_sweep += 1
        if self._hits_since_sweep < self._SWEEP_EVERY:
            return
        self._hits_since_sweep = 0
        horizon = now - self._longest_window
        self._logs = {k: v for k, v in self._logs.items() if v and v[-1] > horizon}

    def close(self) -> None:
        with self._lock:
            self._logs.clear()


class AsyncMemoryRateLimiter:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._memory = MemoryRateLimiter(clock)

    async def hit(self, key: str, rule: RateLimit) -> Decision:
        return self._memory.hit(key, rule)  # microseconds under an uncontended lock

    async def close(self) -> None:
        self._memory.close()


# --- Redis ----------------------------------------------------------------------------------

# KEYS[1] the key's sorted set (score = event time in ms); ARGV: now_ms, window_ms, limit, a
# unique member. Returns 0 when the event was recorded, else the milliseconds to wait.
_SLIDING_LOG = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

_REDIS_TIMEOUT_SECONDS = 0.5


def _script_args(now: float, rule: RateLimit) -> list[int | str]:
    now_ms = int(now * 1000)
    return [now_ms, rule.window_seconds * 1000, rule.limit, f"{now_ms}:{secrets.token_hex(8)}"]


def _from_wait(wait_ms: object) -> Decision:
    wait = int(wait_ms)  # type: ignore[call-overload]
    return ALLOWED if wait == 0 else _refused(wait / 1000)


def _store_down(exc: Exception) -> Decision:
    """An outage of the limit store lets requests through (logged): it must not take the API
    down, and the login lockout lives in the wallet's database, not here."""
    log_fields(log, "rate limit store unavailable", logging.WARNING, error=str(exc))
    return ALLOWED


# Both Redis clients: a store that does not answer fails the hit fast (and lets it through).
_REDIS_OPTIONS: dict[str, Any] = {
    "socket_timeout": _REDIS_TIMEOUT_SECONDS,
    "socket_connect_timeout": _REDIS_TIMEOUT_SECONDS,
}


class _SlidingLogKeys:
    """What the sync and async limiters share: the key prefix and the clock (wall time, not
    monotonic: replicas on different hosts must agree on "now")."""

    def __init__(self, prefix: str, clock: Clock) -> None:
        self._prefix = prefix
        self._clock = clock

    def _script_call(self, key: str, rule: RateLimit) -> dict[str, Any]:
        return {"keys": [self._prefix + key], "args": _script_args(self._clock(), rule)}


class RedisRateLimiter(_SlidingLogKeys):
    """Sliding logs in Redis, shared by every process pointed at the same URL (sync client)."""

    def __init__(self, url: str, *, prefix: str, clock: Clock = time.time) -> None:
        super().__init__(prefix, clock)
        self._redis: redis.Redis = redis.Redis.from_url(url, **_REDIS_OPTIONS)
        self._script = self._redis.register_script(_SLIDING_LOG)

    def hit(self, key: str, rule: RateLimit) -> Decision:
        if not rule.enabled:
            return ALLOWED
        try:
            wait = self._script(**self._script_call(key, rule))
        except (RedisError, OSError) as exc:
            return _store_down(exc)
        return _from_wait(wait)

    def close(self) -> None:
        self._redis.close()


class AsyncRedisRateLimiter(_SlidingLogKeys):
    """The same script through redis.asyncio, for the gateway's event loop."""

    def __init__(self, url: str, *, prefix: str, clock: Clock = time.time) -> None:
        super().__init__(prefix, clock)
        self._redis: redis.asyncio.Redis = redis.asyncio.Redis.from_url(url, **_REDIS_OPTIONS)
        self._script = self._redis.register_script(_SLIDING_LOG)

    async def hit(self, key: str, rule: RateLimit) -> Decision:
        if not rule.enabled:
            return ALLOWED
        try:
            wait = await self._script(**self._script_call(key, rule))
        except (RedisError, OSError) as exc:
            return _store_down(exc)
        return _from_wait(wait)

    async def close(self) -> None:
        await self._redis.aclose()


def limit_name(key: str) -> str:
    """The bounded part of a key, for metrics: 'login:peer:10.0.0.1' -> 'login:peer' (never
    the client address or the user id that follows)."""
    return ":".join(key.split(":")[:2])


class ObservedRateLimiter:
    """Tells `on_refused` the limit's name each time the wrapped limiter refuses."""

    def __init__(self, inner: RateLimiter, on_refused: Callable[[str], None]) -> None:
        self._inner = inner
        self._on_refused = on_refused

    def hit(self, key: str, rule: RateLimit) -> Decision:
        decision = self._inner.hit(key, rule)
        if not decision.allowed:
            self._on_refused(limit_name(key))
        return decision

    def close(self) -> None:
        self._inner.close()


def build_rate_limiter(redis_url: str | None, *, prefix: str) -> RateLimiter:
    return RedisRateLimiter(redis_url, prefix=prefix) if redis_url else MemoryRateLimiter()


def build_async_rate_limiter(redis_url: str | None, *, prefix: str) -> AsyncRateLimiter:
    if redis_url:
        return AsyncRedisRateLimiter(redis_url, prefix=prefix)
    return AsyncMemoryRateLimiter()
