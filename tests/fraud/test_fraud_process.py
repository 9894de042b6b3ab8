"""`python -m fraud_service` as a real process: refusing bad config, logging, SIGTERM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from fraud.v1 import fraud_pb2, fraud_pb2_grpc

from common.processes import ServiceProcess, python_path
from tests.support import SpawnService, clean_environ, wait_for_log

START_TIMEOUT = 60.0  # hang guard


def service_env(**overrides: str) -> dict[str, str]:
    return {**clean_environ(), "PYTHONPATH": python_path(), **overrides}


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


@pytest.fixture
def service(spawn: SpawnService) -> ServiceProcess:
    process = spawn("fraud", "fraud_service", FRAUD_ADDR="127.0.0.1:0", FRAUD_GRACE_SECONDS="2")
    process.start()
    return process


def test_serves_logs_with_request_id_and_exits_zero_on_sigterm(service: ServiceProcess) -> None:
    port = wait_for_log(service, "listening", START_TIMEOUT)["port"]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = fraud_pb2_grpc.FraudServiceStub(channel).Score(
            fraud_pb2.ScoreRequest(
                movement=fraud_pb2.Movement(
                    type="deposit", amount_minor=1_000_000, currency="USD", currency_exponent=2
                ),
                features=fraud_pb2.Features(account_age_seconds=10**8),
            ),
            timeout=START_TIMEOUT,
            metadata=(("x-request-id", "sigterm-test-42"),),
            wait_for_ready=True,
        )
    assert reply.decision == fraud_pb2.REVIEW

    access = wait_for_log(service, "rpc", START_TIMEOUT)
    assert access["request_id"] == "sigterm-test-42"
    assert access["method"] == "/fraud.v1.FraudService/Score"
    assert access["code"] == "OK"

    assert service.terminate(timeout=START_TIMEOUT) == 0
    wait_for_log(service, "stopped", START_TIMEOUT)
