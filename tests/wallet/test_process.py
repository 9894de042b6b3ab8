"""The wallet as a real process: reflection, health, grpcurl, SIGTERM, kill -9 durability,
and refusing to start in production without a strong secret."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from common.processes import ServiceProcess, free_address, python_path
from tests.support import TEST_JWT_SECRET, SpawnService, clean_environ, json_logs, new_user

GRPCURL = Path(sys.executable).parent / "grpcurl"


def start_wallet_process(spawn: SpawnService, db_path: Path, **env: str) -> ServiceProcess:
    """`python -m wallet_service` on a free port, serving; `.address` is where."""
    addr = free_address()
    process = spawn(
        "wallet",
        "wallet_service",
        APP_ENV="test",
        WALLET_ADDR=addr,
        WALLET_DATABASE_URL=f"sqlite:///{db_path}",
        JWT_SECRET_KEY=TEST_JWT_SECRET,
        FRAUD_ADDR="",  # the in-process seed rule: this test is about the wallet alone
        **env,
    )
    process.address = addr
    process.start()
    process.wait_grpc_serving(addr, timeout=20)
    return process


def stub_of(process: ServiceProcess) -> wallet_pb2_grpc.WalletServiceStub:
    return wallet_pb2_grpc.WalletServiceStub(grpc.insecure_channel(process.address))


@pytest.fixture
def wallet_process(spawn: SpawnService, tmp_path: Path) -> ServiceProcess:
    return start_wallet_process(spawn, tmp_path / "wallet.db")


def grpcurl(address: str, *args: str) -> str:
    return subprocess.run(
        [str(GRPCURL), "-plaintext", address, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def test_reflection_and_health_through_grpcurl(wallet_process: ServiceProcess) -> None:
    listed = grpcurl(wallet_process.address, "list")
    assert "wallet.v1.WalletService" in listed.split()
    assert "grpc.health.v1.Health" in listed.split()
    health = grpcurl(wallet_process.address, "grpc.health.v1.Health/Check")
    assert json.loads(health)["status"] == "SERVING"
    channel = grpc.insecure_channel(wallet_process.address)
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="wallet.v1.WalletService")
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_drains_and_exits_zero(wallet_process: ServiceProcess) -> None:
    stub = stub_of(wallet_process)
    _, auth = new_user(stub)
    stub.Deposit(pb.DepositRequest(amount="1.00", currency="USD"), metadata=auth)
    assert wallet_process.terminate(timeout=20) == 0
    rpc_lines = [line for line in json_logs(wallet_process) if line.get("msg") == "rpc"]
    assert any(
        line["method"].endswith("/Deposit") and line["code"] == "OK" and line.get("request_id")
        for line in rpc_lines
    )


def test_acknowledged_operations_survive_kill_9(spawn: SpawnService, tmp_path: Path) -> None:
    process = start_wallet_process(spawn, tmp_path / "durable.db")
    stub = stub_of(process)
    _, auth = new_user(stub)
    acknowledged: list[str] = []
    stop = threading.Event()

    def deposit_until_killed() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                reply = stub.Deposit(
                    pb.DepositRequest(amount="1.00", currency="USD", idempotency_key=f"d-{i}"),
                    metadata=auth,
                    timeout=5,
                )
            except grpc.RpcError:
                return
            acknowledged.append(reply.transaction.id)

    writers = [threading.Thread(target=deposit_until_killed) for _ in range(4)]
    for writer in writers:
        writer.start()
    while len(acknowledged) < 40:
        time.sleep(0.01)
    process.kill9()  # no chance to flush or close anything
    stop.set()
    for writer in writers:
        writer.join(timeout=10)
    seen = list(acknowledged)

    process.start()
    process.wait_grpc_serving(process.address, timeout=20)
    stub = stub_of(process)
    ids: set[str] = set()
    cursor = ""
    while True:
        page = stub.ListTransactions(
            pb.ListTransactionsRequest(limit=200, cursor=cursor), metadata=auth
        )
        ids |= {t.id for t in page.transactions}
        cursor = page.next_cursor
        if not cursor:
            break
    assert set(seen) <= ids  # every acknowledged deposit is there
    balance = stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth).balance
    assert balance == f"{len(ids)}.00"  # and the balance agrees with the history
    assert process.terminate(timeout=20) == 0


@pytest.mark.parametrize(
    ("secret", "message"),
    [("", "JWT_SECRET_KEY is required"), ("changeme", "too weak"), ("short-secret", "too weak")],
)
def test_production_refuses_a_missing_or_weak_secret(
    tmp_path: Path, secret: str, message: str
) -> None:
    env = {
        **clean_environ(),
        "APP_ENV": "production",
        "JWT_SECRET_KEY": secret,
        "WALLET_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "WALLET_ADDR": free_address(),
        "PYTHONPATH": python_path(),
    }
    result = subprocess.run(
        [sys.executable, "-m", "wallet_service"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
