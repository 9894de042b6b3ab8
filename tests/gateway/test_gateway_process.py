"""`python -m gateway` as a real process: settings from the environment, one JSON access
line per request with the request id, and a clean exit 0 on SIGTERM."""

from __future__ import annotations

import httpx

from common.processes import free_port
from tests.support import SpawnService, json_logs


def test_the_process_serves_logs_and_stops_on_sigterm(
    closed_addr: str, spawn: SpawnService
) -> None:
    port = free_port()
    process = spawn(
        "gateway",
        "gateway",
        WALLET_ADDR=closed_addr,
        GATEWAY_PORT=str(port),
        LOGIN_RATE_LIMIT_PER_USERNAME="1",
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    process.wait_http_ok(f"{url}/healthz", timeout=60)  # hang guard
    response = httpx.get(f"{url}/readyz", headers={"X-Request-ID": "proc-test-1"})
    assert response.status_code == 503
    login = {"username": "zed", "password": "x"}
    assert httpx.post(f"{url}/login", json=login).status_code == 503
    assert httpx.post(f"{url}/login", json=login).status_code == 429  # env limit applied
    assert process.terminate(timeout=60) == 0  # hang guard: the drain must end by itself
    access = [line for line in json_logs(process) if line["logger"] == "gateway.access"]
    readyz = next(line for line in access if line["request_id"] == "proc-test-1")
    assert {"method": "GET", "path": "/readyz", "status": 503}.items() <= readyz.items()
    assert readyz["duration_ms"] >= 0
    assert [line["status"] for line in access if line["path"] == "/login"] == [503, 429]
