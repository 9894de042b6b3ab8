"""The gateway's rate limits over HTTP (memory, and Redis shared by two gateway replicas);
the limiter itself is tested in tests/common. Limits apply before the wallet is called, so a
down wallet is enough."""

from __future__ import annotations

import httpx

from gateway.settings import RateLimit
from tests.support import RELAXED, StartGateway, assert_error, unique_name

LOGIN_MESSAGE = "Too many login attempts, try again later"


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


def test_register_per_ip(start_gateway: StartGateway, closed_addr: str) -> None:
    url = start_gateway(closed_addr, register_per_ip=RateLimit(limit=2, window_seconds=3600))
    with httpx.Client(base_url=url, timeout=10) as client:
        body = {"username": unique_name(), "password": "long enough password"}
        assert [client.post("/register", json=body).status_code for _ in range(2)] == [503, 503]
        refused = client.post("/register", json=body)
        assert_error(refused, 429, "rate_limited", "Too many registrations, try again later")
        assert 1 <= int(refused.headers["retry-after"]) <= 3600


def test_money_calls_are_not_limited_per_token_in_the_gateway(
    start_gateway: StartGateway, closed_addr: str
) -> None:
    """The money limit is the wallet's, per authenticated user (tests/security API4)."""
    url = start_gateway(closed_addr)
    body = {"amount": "1.00", "currency": "USD"}
    with httpx.Client(base_url=url, timeout=10) as client:
        statuses = {
            client.post("/deposit", json=body, headers={"Authorization": "Bearer t"}).status_code
            for _ in range(70)
        }
    assert statuses == {503}


def test_replicas_sharing_redis_share_the_login_limit(
    start_gateway: StartGateway, closed_addr: str, redis_url: str
) -> None:
    limits = {
        "redis_url": redis_url,
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
