"""Gateway fixtures: an HTTP client and a browser-like web client on the shared gateway,
and a gateway whose wallet is down (the shared ones, `gateway_url` and `start_gateway`,
are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from common.processes import free_address
from tests.support import Browser, running_gateway


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
