"""Service processes in tests, on the shared toolkit (common/processes.py): a clean
environment, a scratch working directory, and the JSON log lines they wrote."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.processes import ServiceProcess

# Settings a developer's shell may carry; a test process gets only the ones it sets.
PROJECT_ENV_PREFIXES = (
    "WALLET_",
    "FRAUD_",
    "GATEWAY_",
    "JWT_",
    "ADMIN_",
    "APP_ENV",
    "LOG_LEVEL",
    "LOGIN_",
    "MONEY_RATE_",
    "REDIS_URL",
    "CORS_ORIGINS",
    "MAX_",
    "SUPPORTED_CURRENCIES",
    "NOTIFY_",
    "SMTP_URL",
    "MAIL_",
    "WEBHOOK_",
)

# spawn(name, module, **env) -> a not yet started ServiceProcess
SpawnService = Callable[..., ServiceProcess]


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_ENV_PREFIXES)}


def make_process(name: str, module: str, work_dir: Path, **env: str) -> ServiceProcess:
    """A process that runs in `work_dir` (no developer .env there) and logs to it."""
    return ServiceProcess(name, module, env, work_dir, cwd=work_dir, base_env=clean_environ())


def run_to_exit(process: ServiceProcess, timeout: float = 60.0) -> tuple[int, str]:
    """Start `process`, wait for it to exit on its own (`timeout` is a hang guard: a service
    that starts when it should refuse would serve until killed); (exit code, its output)."""
    process.start()
    return process.wait(timeout=timeout), process.log_text()


def json_logs(process: ServiceProcess) -> list[dict[str, Any]]:
    """The process's JSON log lines so far (other output, e.g. gRPC core warnings, skipped)."""
    records = []
    for line in process.log_text().splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a write in progress
    return records


def wait_for_log(process: ServiceProcess, msg: str, timeout: float = 30.0) -> dict[str, Any]:
    """The first JSON log line whose `msg` is `msg`, once the process has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [record for record in json_logs(process) if record.get("msg") == msg]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {msg!r} log line within {timeout} s:\n{process.log_tail(40)}")
