"""Start and stop the real service processes (fraud, wallet, gateway) for one benchmark cell.

Each runs as `python -m <package>` on a free loopback port with its stdout/stderr in a
log file; readiness is grpc.health.v1 Check (gRPC servers) or GET /readyz (gateway).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
JWT_SECRET = "bench-only-jwt-secret-" + "0123456789abcdef" * 3


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    address: str  # host:port for gRPC, base URL for HTTP
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM, wait for the graceful drain, SIGKILL only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _start(name: str, module: str, env: dict[str, str], log_dir: Path, address: str) -> Service:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = os.environ.copy() | env
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            env=full_env,
            cwd=log_dir,  # no developer .env or ./data is picked up
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Service(name, process, address, log_path)


def _wait(service: Service, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ServiceError(
                f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}"
            )
        if probe():
            return
        time.sleep(0.1)
    service.stop()
    raise ServiceError(f"{service.name} not ready after {READY_TIMEOUT_SECONDS}s")


def _grpc_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _http_ready(base_url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200
    return False


def start_fraud(log_dir: Path) -> Service:
    address = f"127.0.0.1:{free_port()}"
    service = _start("fraud", "fraud_service", {"FRAUD_ADDR": address}, log_dir, address)
    _wait(service, lambda: _grpc_serving(address))
    return service


def start_wallet(
    log_dir: Path, *, database_url: str, fraud_addr: str, workers: int, pool_size: int
) -> Service:
    address = f"127.0.0.1:{free_port()}"
    env = {
        "APP_ENV": "test",
        "WALLET_ADDR": address,
        "WALLET_DATABASE_URL": database_url,
        "JWT_SECRET_KEY": JWT_SECRET,
        "FRAUD_ADDR": fraud_addr,
        "WALLET_WORKERS": str(workers),
        "WALLET_DB_POOL_SIZE": str(pool_size),
        "WALLET_GRACE_SECONDS": "2",
        "ADMIN_USERNAME": "",
        "ADMIN_PASSWORD": "",
        # The benchmark's users send far more than a person would: 0 turns a limit off.
        "WALLET_REGISTER_RATE_LIMIT_PER_PEER": "0",
        "WALLET_LOGIN_RATE_LIMIT_PER_PEER": "0",
        "MONEY_RATE_LIMIT_PER_USER": "0",
    }
    service = _start("wallet", "wallet_service", env, log_dir, address)
    _wait(service, lambda: _grpc_serving(address))
    return service


def start_gateway(log_dir: Path, *, wallet_addr: str) -> Service:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "WALLET_ADDR": wallet_addr,
        # The benchmark's users send far more than a person would: 0 turns a limit off.
        "REGISTER_RATE_LIMIT_PER_IP": "0",
        "LOGIN_RATE_LIMIT_PER_IP": "0",
        "LOGIN_RATE_LIMIT_PER_USERNAME": "0",
        "REDIS_URL": "",
    }
    service = _start("gateway", "gateway", env, log_dir, base_url)
    _wait(service, lambda: _http_ready(base_url))
    return service
