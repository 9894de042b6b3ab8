"""The wallet as a real process: reflection, health, grpcurl, SIGTERM draining a call in
flight, kill -9 durability (SQLite and PostgreSQL) with the flush settings that make it
hold, and refusing to start in production without a strong secret."""

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
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy import text
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.conftest import TEST_JWT_SECRET, RunningWallet, database_url
from tests.helpers import new_user

ROOT = Path(__file__).resolve().parents[2]
GRPCURL = Path(sys.executable).parent / "grpcurl"
HANG_GUARD = 120.0  # seconds; only so that a broken drain fails instead of hanging
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WalletProcess:
    def __init__(self, url: str, port: int, **env: str) -> None:
        self.addr = f"127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "APP_ENV": "test",
            "WALLET_ADDR": self.addr,
            "WALLET_DATABASE_URL": url,
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
        return self.proc.wait(timeout=HANG_GUARD)

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines on stderr (read once the process has exited)."""
        assert self.proc is not None and self.proc.stderr is not None
        return [
            json.loads(line)
            for line in self.proc.stderr.read().splitlines()
            if line.startswith(b"{")
        ]


@pytest.fixture
def wallet_process(tmp_path: Path) -> Iterator[WalletProcess]:
    process = WalletProcess(f"sqlite:///{tmp_path / 'wallet.db'}", free_port())
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


class HeldFraud(fraud_pb2_grpc.FraudServiceServicer):
    """A fraud service that holds every Score until released: a movement stays in flight
    inside the wallet for as long as the test wants (its deadline is set far beyond)."""

    def __init__(self) -> None:
        self.scoring = threading.Event()
        self.release = threading.Event()

    def Score(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.scoring.set()
        self.release.wait(HANG_GUARD)
        return fraud_pb2.ScoreResponse(score=0, decision=fraud_pb2.ALLOW, rules_version="held")


@pytest.fixture
def held_fraud() -> Iterator[tuple[HeldFraud, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    fraud = HeldFraud()
    fraud_pb2_grpc.add_FraudServiceServicer_to_server(fraud, server)
    health_servicer = health.HealthServicer()
    health_servicer.set("fraud.v1.FraudService", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fraud, f"127.0.0.1:{port}"
    fraud.release.set()
    server.stop(None)


def wait_until_draining(addr: str) -> None:
    """Until the wallet refuses new work (health NOT_SERVING, or no longer listening)."""
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        with grpc.insecure_channel(addr) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                if reply.status != health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                return
        time.sleep(0.05)
    raise AssertionError("the wallet never started draining after SIGTERM")


def test_sigterm_drains_a_call_in_flight_and_exits_zero(
    tmp_path: Path, held_fraud: tuple[HeldFraud, str]
) -> None:
    fraud, fraud_addr = held_fraud
    process = WalletProcess(
        f"sqlite:///{tmp_path / 'drain.db'}",
        free_port(),
        FRAUD_ADDR=fraud_addr,
        FRAUD_TIMEOUT_MS=str(int(HANG_GUARD * 1000)),  # held, not timed out
        WALLET_GRACE_SECONDS=str(int(HANG_GUARD)),
    )
    process.start()
    try:
        stub = process.stub()
        _, auth = new_user(stub)
        call = stub.Deposit.future(
            pb.DepositRequest(amount="1.00", currency="USD", idempotency_key="in-flight"),
            metadata=auth,
            timeout=HANG_GUARD,
        )
        assert fraud.scoring.wait(HANG_GUARD), "the deposit never reached the fraud service"
        assert process.proc is not None
        process.proc.send_signal(signal.SIGTERM)  # with the deposit in flight
        wait_until_draining(process.addr)
        assert not call.done()  # SIGTERM did not cut it off
        fraud.release.set()
        reply = call.result(timeout=HANG_GUARD)
        assert (reply.transaction.status, reply.balance) == ("completed", "1.00")
        assert process.proc.wait(timeout=HANG_GUARD) == 0
    finally:
        fraud.release.set()
        if process.proc is not None and process.proc.poll() is None:
            process.kill(signal.SIGKILL)
    lines = process.log_lines()
    assert any(line.get("msg") == "stopping" for line in lines)
    assert any(
        line.get("msg") == "rpc"
        and line["method"].endswith("/Deposit")
        and line["code"] == "OK"
        and line.get("request_id")
        for line in lines
    )


def test_commits_are_flushed_before_they_are_acknowledged(wallet: RunningWallet) -> None:
    """What makes kill -9 (and power loss) lose nothing, read on the live server's own
    connections: SQLite in WAL mode with synchronous=FULL (OFF or NORMAL would pass the
    kill -9 test below too); PostgreSQL with fsync and synchronous_commit on."""
    with wallet.store.engine.connect() as conn:
        if wallet.backend == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        else:
            assert conn.execute(text("SHOW fsync")).scalar() == "on"
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"


@pytest.mark.parametrize("backend", STORES)
def test_acknowledged_operations_survive_kill_9(
    backend: str, tmp_path: Path, pg_database_factory: object
) -> None:
    url = database_url(backend, tmp_path, pg_database_factory)
    process = WalletProcess(url, free_port())
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
                    timeout=HANG_GUARD,
                )
            except grpc.RpcError:
                return
            acknowledged.append(reply.transaction.id)

    writers = [threading.Thread(target=deposit_until_killed) for _ in range(4)]
    for writer in writers:
        writer.start()
    while len(acknowledged) < 40:
        assert any(w.is_alive() for w in writers), "every writer stopped before 40 deposits"
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
            pb.ListTransactionsRequest(limit=200, cursor=cursor), metadata=auth, timeout=HANG_GUARD
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
