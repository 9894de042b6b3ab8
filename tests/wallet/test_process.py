"""The wallet as a real process: reflection, health, grpcurl, SIGTERM, kill -9 durability,
and refusing to start in production without a strong secret."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.conftest import TEST_JWT_SECRET
from tests.helpers import new_user

ROOT = Path(__file__).resolve().parents[2]
GRPCURL = Path(sys.executable).parent / "grpcurl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WalletProcess:
    def __init__(self, db_path: Path, port: int, **env: str) -> None:
        self.addr = f"127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "APP_ENV": "test",
            "WALLET_ADDR": self.addr,
            "WALLET_DATABASE_URL": f"sqlite:///{db_path}",
            "JWT_SECRET_KEY": TEST_JWT_SECRET,
            "FRAUD_ADDR": "",  # the in-process seed rule: this test is about the wallet alone
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wallet_service"], cwd=ROOT, env=self.env, stderr=subprocess.PIPE
        )
        channel = grpc.insecure_channel(self.addr)
        grpc.channel_ready_future(channel).result(timeout=60)  # hang guard
        channel.close()

    def stub(self) -> wallet_pb2_grpc.WalletServiceStub:
        return wallet_pb2_grpc.WalletServiceStub(grpc.insecure_channel(self.addr))

    def kill(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)


@pytest.fixture
def wallet_process(tmp_path: Path) -> Iterator[WalletProcess]:
    process = WalletProcess(tmp_path / "wallet.db", free_port())
    process.start()
    yield process
    if process.proc and process.proc.poll() is None:
        process.kill(signal.SIGKILL)


def test_reflection_and_health_through_grpcurl(wallet_process: WalletProcess) -> None:
    listed = subprocess.run(
        [str(GRPCURL), "-plaintext", wallet_process.addr, "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "wallet.v1.WalletService" in listed.split()
    assert "grpc.health.v1.Health" in listed.split()
    health = subprocess.run(
        [str(GRPCURL), "-plaintext", wallet_process.addr, "grpc.health.v1.Health/Check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert json.loads(health)["status"] == "SERVING"
    channel = grpc.insecure_channel(wallet_process.addr)
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="wallet.v1.WalletService")
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_drains_and_exits_zero(wallet_process: WalletProcess) -> None:
    stub = wallet_process.stub()
    _, auth = new_user(stub)
    stub.Deposit(pb.DepositRequest(amount="1.00", currency="USD"), metadata=auth)
    assert wallet_process.kill(signal.SIGTERM) == 0
    assert wallet_process.proc is not None and wallet_process.proc.stderr is not None
    lines = [
        json.loads(line)
        for line in wallet_process.proc.stderr.read().splitlines()
        if line.startswith(b"{")
    ]
    rpc_lines = [line for line in lines if line.get("msg") == "rpc"]
    assert any(
        line["method"].endswith("/Deposit") and line["code"] == "OK" and line.get("request_id")
        for line in rpc_lines
    )


def test_acknowledged_operations_survive_kill_9(tmp_path: Path) -> None:
    process = WalletProcess(tmp_path / "durable.db", free_port())
    process.start()
    stub = process.stub()
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
    process.kill(signal.SIGKILL)  # no chance to flush or close anything
    stop.set()
    for writer in writers:
        writer.join(timeout=10)
    seen = list(acknowledged)

    process.start()
    stub = process.stub()
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
    process.kill(signal.SIGTERM)


@pytest.mark.parametrize(
    ("secret", "message"),
    [("", "JWT_SECRET_KEY is required"), ("changeme", "too weak"), ("short-secret", "too weak")],
)
def test_production_refuses_a_missing_or_weak_secret(
    tmp_path: Path, secret: str, message: str
) -> None:
    env = {
        **os.environ,
        "APP_ENV": "production",
        "JWT_SECRET_KEY": secret,
        "WALLET_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "WALLET_ADDR": f"127.0.0.1:{free_port()}",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}",
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
