"""Rate limits: the backends on their own, then over HTTP (memory, and Redis shared by two
gateway replicas). Limits apply before the wallet is called, so a down wallet is enough."""

from __future__ import annotations

import uuid

import httpx
import pytest
import redis

from gateway.ratelimit import Decision, MemoryRateLimiter, RedisRateLimiter
from gateway.settings import RateLimit
from tests.support import RELAXED, StartGateway, assert_error, unique_name

REDIS_URL = "redis://127.0.0.1:6379/0"
LOGIN_MESSAGE = "Too many login attempts, try again later"


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_window_refuses_the_extra_hit_then_resets() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    rule = RateLimit(limit=2, window_seconds=10)
    assert await limiter.hit("k", rule) == Decision(allowed=True)
    clock.now += 4
    assert await limiter.hit("k", rule) == Decision(allowed=True)
    clock.now += 0.5
    assert await limiter.hit("k", rule) == Decision(allowed=False, retry_after_seconds=6)
    assert await limiter.hit("other", rule) == Decision(allowed=True)
    clock.now += 6
    assert await limiter.hit("k", rule) == Decision(allowed=True)


@needs_redis
async def test_redis_window_refuses_the_extra_hit_with_retry_after() -> None:
    limiter = RedisRateLimiter(REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    rule = RateLimit(limit=2, window_seconds=30)
    try:
        assert [(await limiter.hit("k", rule)).allowed for _ in range(3)] == [True, True, False]
        refused = await limiter.hit("k", rule)
        assert not refused.allowed
        assert 1 <= refused.retry_after_seconds <= 30
        assert (await limiter.hit("other", rule)).allowed
    finally:
        await limiter.close()


async def test_an_unreachable_redis_lets_requests_through() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        decision = await limiter.hit("k", RateLimit(limit=1, window_seconds=10))
        assert decision.allowed
    finally:
        await limiter.close()


def _login(client: httpx.Client, username: str) -> httpx.Response:
    return client.post("/login", json={"username": username, "password": "wrong"})


def test_login_per_username_the_extra_attempt_is_429_and_others_pass(
    start_gateway: StartGateway, closed_addr: str
) -> None:
    url = start_gateway(closed_addr, login_per_username=RateLimit(limit=3, window_seconds=60))
    alice, bob = unique_name("alice"), unique_name("bob")
    with httpx.Client(base_url=url, timeout=10) as client:
        assert [_login(client, alice).status_code for _ in range(3)] == [503, 503, 503]
        refused = _login(client, alice.upper())  # the same name in another case
        assert_error(refused, 429, "rate_limited", LOGIN_MESSAGE)
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert _login(client, bob).status_code == 503  # reached the (down) wallet


def test_login_per_ip(start_gateway: StartGateway, closed_addr: str) -> None:
    url = start_gateway(closed_addr, login_per_ip=RateLimit(limit=2, window_seconds=60))
    with httpx.Client(base_url=url, timeout=10) as client:
        assert [_login(client, unique_name()).status_code for _ in range(2)] == [503, 503]
        assert_error(_login(client, unique_name()), 429, "rate_limited", LOGIN_MESSAGE)


def test_a_spoofed_x_forwarded_for_does_not_dodge_the_ip_limit(
    start_gateway: StartGateway, closed_addr: str
) -> None:
    url = start_gateway(closed_addr, login_per_ip=RateLimit(limit=1, window_seconds=60))
    with httpx.Client(base_url=url, timeout=10) as client:
        assert _login(client, unique_name()).status_code == 503
        spoofed = client.post(
            "/login",
            json={"username": unique_name(), "password": "x"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert spoofed.status_code == 429


def test_money_calls_per_token(start_gateway: StartGateway, closed_addr: str) -> None:
    url = start_gateway(closed_addr, money_per_token=RateLimit(limit=2, window_seconds=60))
    token_a = {"Authorization": "Bearer token-a"}
    token_b = {"Authorization": "Bearer token-b"}
    body = {"amount": "1.00", "currency": "USD"}
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/deposit", json=body, headers=token_a).status_code == 503
        assert client.post("/withdraw", json=body, headers=token_a).status_code == 503
        refused = client.post("/deposit", json=body, headers=token_a)
        assert_error(refused, 429, "rate_limited", "Too many money requests, try again later")
        assert int(refused.headers["retry-after"]) >= 1
        assert client.post("/deposit", json=body, headers=token_b).status_code == 503
        # Reads are not money calls.
        assert client.get("/balance", headers=token_a).status_code == 503


@needs_redis
def test_replicas_sharing_redis_share_the_login_limit(
    start_gateway: StartGateway, closed_addr: str
) -> None:
    limits = {
        "redis_url": REDIS_URL,
        "login_per_ip": RELAXED,
        "login_per_username": RateLimit(limit=3, window_seconds=60),
    }
    replica_1 = start_gateway(closed_addr, **limits)
    replica_2 = start_gateway(closed_addr, **limits)
    carol = unique_name("carol")
    with httpx.Client(timeout=10) as client:
        codes = [
            client.post(f"{url}/login", json={"username": carol, "password": "x"}).status_code
            for url in (replica_1, replica_2, replica_1)
        ]
        assert codes == [503, 503, 503]
        refused = client.post(f"{replica_2}/login", json={"username": carol, "password": "x"})
        assert_error(refused, 429, "rate_limited", LOGIN_MESSAGE)
        other = client.post(f"{replica_2}/login", json={"username": unique_name(), "password": "x"})
        assert other.status_code == 503
