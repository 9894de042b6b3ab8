"""Gateway fixtures for a wallet that is down (the shared ones, `gateway_url` and
`start_gateway`, are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from common.processes import free_address
from tests.support import running_gateway


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
