"""`python -m fraud_service` as a real process: refusing bad config, logging, SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fraud.v1 import fraud_pb2, fraud_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # hang guard


def service_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_", "LOG_LEVEL"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "gen")])
    env.update(overrides)
    return env


def run_to_exit(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # cwd=tmp_path so a developer's .env in the repository cannot leak in.
    return subprocess.run(
        [sys.executable, "-m", "fraud_service"],
        cwd=tmp_path,
        env=service_env(**env),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def test_invalid_rules_file_stops_the_process_with_a_clear_message(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('rules_version = "x"\n[rules.velocity]\ndecision = "DENY"\n')
    result = run_to_exit(tmp_path, FRAUD_RULES_FILE=str(rules))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"fraud_service: configuration error: invalid fraud rules file {rules}: "
        "rules.velocity.decision must be one of REVIEW, BLOCK, got 'DENY'"
    )


def test_invalid_threshold_stops_the_process(tmp_path: Path) -> None:
    result = run_to_exit(tmp_path, FRAUD_THRESHOLD="ten thousand")
    assert result.returncode == 2
    assert "FRAUD_THRESHOLD must be a plain decimal number" in result.stderr


class RunningService:
    """A `python -m fraud_service` child whose JSON log lines are read as they come."""

    def __init__(self, cwd: Path, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fraud_service"],
            cwd=cwd,
            env=service_env(**env),
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.logs: list[dict[str, Any]] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.put(line)

    def wait_for_log(self, msg: str, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            try:
                record: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                continue  # not ours (e.g. a gRPC core warning)
            self.logs.append(record)
            if record.get("msg") == msg:
                return record
        raise AssertionError(f"no {msg!r} log line within {timeout} s; saw {self.logs}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=START_TIMEOUT)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RunningService]:
    running = RunningService(tmp_path, FRAUD_ADDR="127.0.0.1:0", FRAUD_GRACE_SECONDS="2")
    yield running
    running.stop()


def test_serves_logs_with_request_id_and_exits_zero_on_sigterm(service: RunningService) -> None:
    port = service.wait_for_log("listening")["port"]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = fraud_pb2_grpc.FraudServiceStub(channel).Score(
            fraud_pb2.ScoreRequest(
                movement=fraud_pb2.Movement(
                    type="deposit", amount_minor=1_000_000, currency="USD", currency_exponent=2
                ),
                features=fraud_pb2.Features(account_age_seconds=10**8),
            ),
            timeout=START_TIMEOUT,
            metadata=[("x-request-id", "sigterm-test-42")],
            wait_for_ready=True,
        )
    assert reply.decision == fraud_pb2.REVIEW

    access = service.wait_for_log("rpc")
    assert access["request_id"] == "sigterm-test-42"
    assert access["method"] == "/fraud.v1.FraudService/Score"
    assert access["code"] == "OK"

    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=START_TIMEOUT) == 0
    service.wait_for_log("stopped")
