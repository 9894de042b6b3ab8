"""Gateway fixtures: real uvicorn servers on free loopback ports, pointed at a wallet.

`start_gateway(wallet_addr, **overrides)` starts a gateway in a background thread and
returns its base URL; every gateway started in a test is stopped at its end.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway_helpers import StartGateway

from tests.gateway_server import GatewayThread, gateway_settings


@pytest.fixture
def start_gateway() -> Iterator[StartGateway]:
    started: list[GatewayThread] = []

    def start(wallet_addr: str, **overrides: Any) -> str:
        gateway = GatewayThread(gateway_settings(wallet_addr, **overrides))
        gateway.start()
        started.append(gateway)
        return gateway.url

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="session")
def closed_addr() -> str:
    """An address where nothing listens: the wallet is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def down_url(closed_addr: str) -> Iterator[str]:
    """A gateway whose wallet is down (shared: its limits are relaxed)."""
    gateway = GatewayThread(gateway_settings(closed_addr))
    gateway.start()
    yield gateway.url
    gateway.stop()


@pytest.fixture
def down_client(down_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=down_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def gateway_url(wallet_addr: str) -> Iterator[str]:
    """A gateway in front of the real wallet (from tests/conftest.py), relaxed limits."""
    gateway = GatewayThread(gateway_settings(wallet_addr))
    gateway.start()
    yield gateway.url
    gateway.stop()
