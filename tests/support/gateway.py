"""A real gateway (uvicorn) in a background thread, its settings, and the checks of its
one error shape."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from common.telemetry import Telemetry
from gateway.__main__ import server_config
from gateway.settings import GatewaySettings, RateLimit

# Limits high enough that ordinary tests never meet them (they share 127.0.0.1).
RELAXED = RateLimit(limit=100_000, window_seconds=60)

# start_gateway(wallet_addr, **settings overrides) -> base URL
StartGateway = Callable[..., str]


class GatewayThread:
    """One uvicorn server on an already-bound socket (so the port is known before start)."""

    def __init__(self, settings: GatewaySettings, telemetry: Telemetry | None = None) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(server_config(settings, telemetry))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 60  # hang guard
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def gateway_settings(wallet_addr: str, **overrides: Any) -> GatewaySettings:
    base = GatewaySettings(
        wallet_addr=wallet_addr,
        # A hang guard, not a behaviour: on a loaded CI host a wallet call can take seconds,
        # and a deadline error there is a flake. Deadline tests pass their own.
        rpc_timeout_seconds=30.0,
        register_per_ip=RELAXED,
        login_per_ip=RELAXED,
        login_per_username=RELAXED,
    )
    return dataclasses.replace(base, **overrides)


@contextmanager
def running_gateway(wallet_addr: str, **overrides: Any) -> Iterator[str]:
    """A started gateway in front of `wallet_addr`; yields its base URL, then stops it."""
    gateway = GatewayThread(gateway_settings(wallet_addr, **overrides))
    gateway.start()
    try:
        yield gateway.url
    finally:
        gateway.stop()


def assert_error(
    response: httpx.Response, status: int, code: str, message: str | None = None
) -> dict[str, Any]:
    """The one error shape: exact keys, msg == error.message, request id == X-Request-ID."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    request_id = response.headers["x-request-id"]
    expected_message = body["msg"] if message is None else message
    assert body == {
        "msg": expected_message,
        "error": {"code": code, "message": expected_message, "request_id": request_id},
    }
    return body


def error_code(response: httpx.Response) -> str:
    body = response.json()
    return str(body["error"]["code"])
