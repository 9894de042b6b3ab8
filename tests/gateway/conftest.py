"""Gateway fixtures: an HTTP client and a browser-like web client on the shared gateway, a
gateway with its own wallet and fraud service, and a gateway whose wallet is down (the
shared ones, `gateway_url` and `start_gateway`, are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.processes import free_address
from tests.support import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    Browser,
    CreateDatabase,
    StartGateway,
    own_fraud_gateway,
    running_gateway,
)


@pytest.fixture(scope="session")
def closed_addr() -> str:
    """An address where nothing listens: the wallet is down."""
    return free_address()


@pytest.fixture(scope="session")
def down_url(closed_addr: str) -> Iterator[str]:
    """A gateway whose wallet is down (shared: its limits are relaxed)."""
    with running_gateway(closed_addr) as url:
        yield url


@pytest.fixture
def down_client(down_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=down_url, timeout=10) as client:
        yield client


@pytest.fixture
def api(gateway_url: str) -> Iterator[httpx.Client]:
    """A JSON API client of the shared gateway."""
    with httpx.Client(base_url=gateway_url, timeout=15) as client:
        yield client


@pytest.fixture
def browser(gateway_url: str) -> Iterator[Browser]:
    """A web client (cookie jar, form filling) of the shared gateway."""
    client = Browser(gateway_url)
    yield client
    client.close()


@pytest.fixture
def admin_browser(gateway_url: str) -> Iterator[Browser]:
    """A web client of the shared gateway logged in as the admin."""
    client = Browser(gateway_url)
    client.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    yield client
    client.close()  # no logout: that would end every session of the shared admin


@pytest.fixture
def own_gateway_url(
    tmp_path: Path, pg_database_factory: CreateDatabase, start_gateway: StartGateway
) -> Iterator[str]:
    """A gateway with its own wallet and fraud service on SQLite: a test that activates a
    rule set changes what every later score decides, so not on the shared servers."""
    with own_fraud_gateway("sqlite", tmp_path, pg_database_factory, start_gateway) as url:
        yield url
