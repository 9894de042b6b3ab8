"""Start and stop the real service processes (fraud, wallet, gateway) for one benchmark cell.

Each runs as `python -m <package>` (common/processes.py) on a free loopback port with its
output in a log file; readiness is grpc.health.v1 SERVING (gRPC servers) or GET /readyz
(gateway). `Service.address` is host:port for gRPC, the base URL for HTTP.
"""

from __future__ import annotations

from pathlib import Path

from common.processes import ServiceProcess, free_port

Service = ServiceProcess
READY_TIMEOUT_SECONDS = 60.0
JWT_SECRET = "bench-only-jwt-secret-" + "0123456789abcdef" * 3


def _service(name: str, module: str, env: dict[str, str], log_dir: Path, address: str) -> Service:
    # cwd=log_dir: no developer .env or ./data is picked up.
    return ServiceProcess(name, module, env, log_dir, cwd=log_dir, address=address)


def start_fraud(log_dir: Path) -> Service:
    address = f"127.0.0.1:{free_port()}"
    env = {"FRAUD_ADDR": address, "FRAUD_DATABASE_URL": f"sqlite:///{log_dir / 'fraud.db'}"}
    service = _service("fraud", "fraud_service", env, log_dir, address)
    service.start()
    service.wait_grpc_serving(address, timeout=READY_TIMEOUT_SECONDS)
    return service


def start_wallet(
    log_dir: Path,
    *,
    database_url: str,
    fraud_addr: str,
    workers: int,
    pool_size: int,
    processes: int = 1,
) -> Service:
    """`processes` > 1: that many wallet processes on the port under the supervisor
    (WALLET_PROCESSES); the Service's pid is the supervisor's, the workers its children."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        "APP_ENV": "test",
        "WALLET_ADDR": address,
        "WALLET_DATABASE_URL": database_url,
        "JWT_SECRET_KEY": JWT_SECRET,
        "FRAUD_ADDR": fraud_addr,
        "WALLET_WORKERS": str(workers),
        "WALLET_DB_POOL_SIZE": str(pool_size),
        "WALLET_PROCESSES": str(processes),
        "WALLET_GRACE_SECONDS": "2",
        "ADMIN_USERNAME": "",
        "ADMIN_PASSWORD": "",
        # The benchmark's users send far more than a person would: 0 turns a limit off.
        "WALLET_REGISTER_RATE_LIMIT_PER_PEER": "0",
        "WALLET_LOGIN_RATE_LIMIT_PER_PEER": "0",
        "MONEY_RATE_LIMIT_PER_USER": "0",
    }
    service = _service("wallet", "wallet_service", env, log_dir, address)
    service.start()
    service.wait_grpc_serving(address, timeout=READY_TIMEOUT_SECONDS)
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
    service = _service("gateway", "gateway", env, log_dir, base_url)
    service.start()
    service.wait_http_ok(f"{base_url}/readyz", timeout=READY_TIMEOUT_SECONDS)
    return service
