"""`python -m gateway` as a real process: settings from the environment, one JSON access
line per request with the request id, and a clean exit 0 on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60  # hang guard
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("gateway did not come up")


def test_the_process_serves_logs_and_stops_on_sigterm(closed_addr: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "WALLET_ADDR": closed_addr,
        "GATEWAY_PORT": str(port),
        "LOGIN_RATE_LIMIT_PER_USERNAME": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        cwd=tmp_path,  # no .env there
        env={**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, process)
        response = httpx.get(f"{url}/readyz", headers={"X-Request-ID": "proc-test-1"})
        assert response.status_code == 503
        login = {"username": "zed", "password": "x"}
        assert httpx.post(f"{url}/login", json=login).status_code == 503
        assert httpx.post(f"{url}/login", json=login).status_code == 429  # env limit applied
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "gateway.access"]
    readyz = next(line for line in access if line["request_id"] == "proc-test-1")
    assert {"method": "GET", "path": "/readyz", "status": 503}.items() <= readyz.items()
    assert readyz["duration_ms"] >= 0
    assert [line["status"] for line in access if line["path"] == "/login"] == [503, 429]
