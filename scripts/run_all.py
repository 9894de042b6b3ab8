"""`make run`: start fraud_service, wallet_service and the gateway together (in that
order, each after the previous one is healthy), print where they listen, and stop them
all cleanly on Ctrl-C / SIGTERM or as soon as one of them dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common.config import current_env, load_env_file
from common.processes import Probe, ServiceError, ServiceProcess, grpc_serving, http_ok
from common.tls import TlsSettings

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 30


class Supervisor:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[ServiceProcess] = []

    def start(self, name: str, module: str, ready: Probe) -> None:
        # No log_dir: the services log to this terminal.
        child = ServiceProcess(name, module, self.env, cwd=ROOT)
        self.children.append(child)
        child.start()
        try:
            child.wait_ready(ready, timeout=START_TIMEOUT_SECONDS)
        except ServiceError as exc:
            self.stop()
            raise SystemExit(f"{exc}; see its log above") from exc

    def wait(self) -> int:
        while True:
            for child in self.children:
                code = child.returncode
                if code is not None:
                    print(
                        f"{child.name} exited with code {code}; stopping the others",
                        file=sys.stderr,
                    )
                    self.stop()
                    return code or 1
            time.sleep(0.5)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.request_stop()  # all drain at once, then each is waited for
        for child in reversed(self.children):
            child.terminate()


def main() -> None:
    load_env_file()
    env = current_env()
    env.setdefault("WALLET_ADDR", "127.0.0.1:50051")
    env.setdefault("FRAUD_ADDR", "127.0.0.1:50052")
    env.setdefault("GATEWAY_HOST", "127.0.0.1")
    env.setdefault("GATEWAY_PORT", "5000")
    if env.get("WALLET_DATABASE_URL", "").startswith("postgresql"):
        # One wallet process per core on one port (SQLite is served by one process).
        env.setdefault("WALLET_PROCESSES", str(os.cpu_count() or 1))
    # Each process serves its own Prometheus scrape endpoint (the gateway: GET /metrics).
    env.setdefault("FRAUD_METRICS_PORT", "9102")
    env.setdefault("WALLET_METRICS_PORT", "9101")
    if not env.get("JWT_SECRET_KEY"):
        print(
            "JWT_SECRET_KEY is not set: the wallet uses a generated development secret kept "
            "in data/dev_jwt_secret. Set JWT_SECRET_KEY (and APP_ENV=production) for real use."
        )
    subprocess.run([sys.executable, "-m", "wallet_service.migrate"], cwd=ROOT, env=env, check=True)
    supervisor = Supervisor(env)

    def on_sigterm(*_: object) -> None:
        supervisor.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    gateway = f"http://{env['GATEWAY_HOST']}:{env['GATEWAY_PORT']}"
    # With *_TLS_* set, each readiness probe dials as that process (its certificate is a
    # client certificate too); unset (the default), plaintext on loopback.
    fraud_tls, wallet_tls = TlsSettings.from_env(env, "FRAUD"), TlsSettings.from_env(env, "WALLET")
    try:
        supervisor.start(
            "fraud_service", "fraud_service", lambda: grpc_serving(env["FRAUD_ADDR"], tls=fraud_tls)
        )
        supervisor.start(
            "wallet_service",
            "wallet_service",
            lambda: grpc_serving(env["WALLET_ADDR"], tls=wallet_tls),
        )
        supervisor.start("gateway", "gateway", lambda: http_ok(f"{gateway}/healthz"))
        print(
            "\nDigital wallet is running:\n"
            f"  fraud_service  gRPC  {env['FRAUD_ADDR']}\n"
            f"  wallet_service gRPC  {env['WALLET_ADDR']}"
            f"  (grpcurl -plaintext {env['WALLET_ADDR']} list)\n"
            f"  gateway        HTTP  {gateway}  (web app: {gateway}/  API docs: {gateway}/docs)\n"
            f"  metrics        {gateway}/metrics"
            f"  http://127.0.0.1:{env['WALLET_METRICS_PORT']}/metrics (wallet)"
            f"  http://127.0.0.1:{env['FRAUD_METRICS_PORT']}/metrics (fraud)\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        sys.exit(supervisor.wait())
    except KeyboardInterrupt:
        supervisor.stop()


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
