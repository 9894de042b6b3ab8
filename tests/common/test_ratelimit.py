"""The one rate limiter (common.ratelimit), memory and Redis backends, driven by an injected
clock: every assertion counts accepted events; no test waits for a window to pass."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.ratelimit import (
    AsyncRedisRateLimiter,
    Decision,
    MemoryRateLimiter,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


MakeLimiter = Callable[[FakeClock], RateLimiter]


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> Iterator[MakeLimiter]:
    made: list[RateLimiter] = []
    prefix = f"test:{uuid.uuid4().hex}:"

    def make(clock: FakeClock) -> RateLimiter:
        limiter: RateLimiter
        if request.param == "memory":
            limiter = MemoryRateLimiter(clock)
        else:
            url = request.getfixturevalue("redis_url")
            limiter = RedisRateLimiter(url, prefix=prefix, clock=clock)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        limiter.close()


def allowed(limiter: RateLimiter, key: str, rule: RateLimit, times: int) -> int:
    return sum(limiter.hit(key, rule).allowed for _ in range(times))


def test_the_hit_over_the_limit_is_refused_with_the_exact_wait(make_limiter: MakeLimiter) -> None:
    clock = FakeClock()
    limiter = make_limiter(clock)
    rule = RateLimit(limit=2, window_seconds=10)
    assert limiter.hit("k", rule) == Decision(allowed=True)
    clock.now += 4
    assert limiter.hit("k", rule) == Decision(allowed=True)
    clock.now += 0.5
    # The oldest event (4.5 s ago) leaves the window in 5.5 s: Retry-After rounds up.
    assert limiter.hit("k", rule) == Decision(allowed=False, retry_after_seconds=6)
    assert limiter.hit("other", rule) == Decision(allowed=True)
    clock.now += 5.5
    assert limiter.hit("k", rule) == Decision(allowed=True)  # one slot freed, one used
    assert not limiter.hit("k", rule).allowed


def test_no_double_burst_across_a_window_edge(make_limiter: MakeLimiter) -> None:
    """A fixed window lets `limit` through at its end and `limit` more right after: 2x."""
    clock = FakeClock()
    limiter = make_limiter(clock)
    rule = RateLimit(limit=3, window_seconds=10)
    clock.now += 9.9
    assert allowed(limiter, "k", rule, 3) == 3
    clock.now += 0.2  # a fresh fixed window would start here
    assert allowed(limiter, "k", rule, 3) == 0
    clock.now += 9.8  # exactly one window after the first three
    assert allowed(limiter, "k", rule, 5) == 3


def test_refused_hits_are_not_counted(make_limiter: MakeLimiter) -> None:
    clock = FakeClock()
    limiter = make_limiter(clock)
    rule = RateLimit(limit=1, window_seconds=10)
    assert limiter.hit("k", rule).allowed
    for _ in range(5):
        clock.now += 1
        assert not limiter.hit("k", rule).allowed
    clock.now += 5  # ten seconds after the one accepted hit, whatever was refused since
    assert limiter.hit("k", rule).allowed


def test_a_zero_limit_is_off(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(FakeClock())
    assert allowed(limiter, "k", RateLimit(limit=0, window_seconds=10), 50) == 50


def test_a_parallel_burst_gets_exactly_the_limit(make_limiter: MakeLimiter) -> None:
    clock = FakeClock()
    limiter = make_limiter(clock)
    rule = RateLimit(limit=5, window_seconds=60)
    barrier = threading.Barrier(40, timeout=30)

    def hit(_: int) -> bool:
        barrier.wait()
        return limiter.hit("burst", rule).allowed

    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(hit, range(40)))
    assert answers.count(True) == 5


def test_two_processes_on_one_redis_share_the_limit(redis_url: str) -> None:
    clock = FakeClock()
    prefix = f"test:{uuid.uuid4().hex}:"
    replicas = [RedisRateLimiter(redis_url, prefix=prefix, clock=clock) for _ in range(2)]
    rule = RateLimit(limit=3, window_seconds=60)
    try:
        answers = [replicas[i % 2].hit("k", rule).allowed for i in range(8)]
    finally:
        for replica in replicas:
            replica.close()
    assert answers == [True, True, True] + [False] * 5


async def test_async_redis_burst_gets_exactly_the_limit(redis_url: str) -> None:
    clock = FakeClock()
    limiter = AsyncRedisRateLimiter(redis_url, prefix=f"test:{uuid.uuid4().hex}:", clock=clock)
    rule = RateLimit(limit=4, window_seconds=60)
    try:
        decisions = await asyncio.gather(*(limiter.hit("k", rule) for _ in range(30)))
        clock.now += 60
        after = await limiter.hit("k", rule)
    finally:
        await limiter.close()
    assert [d.allowed for d in decisions].count(True) == 4
    assert {d.retry_after_seconds for d in decisions if not d.allowed} == {60}
    assert after.allowed


async def test_an_unreachable_redis_lets_requests_through() -> None:
    limiter = AsyncRedisRateLimiter("redis://127.0.0.1:1/0", prefix="x:")
    sync = RedisRateLimiter("redis://127.0.0.1:1/0", prefix="x:")
    rule = RateLimit(limit=1, window_seconds=10)
    try:
        assert (await limiter.hit("k", rule)).allowed
        assert sync.hit("k", rule).allowed
    finally:
        await limiter.close()
        sync.close()
