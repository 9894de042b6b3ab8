"""The wallet as a real process: reflection, health, grpcurl, SIGTERM draining a call in
flight (and a repeated SIGTERM that keeps draining), kill -9 durability (SQLite and
PostgreSQL) with the flush settings that make it hold, and refusing to start in production
without a strong secret."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from common.processes import ServiceProcess, free_address, wait_for
from tests.support import (
    STORES,
    TEST_JWT_SECRET,
    CreateDatabase,
    HeldFraud,
    RunningWallet,
    SpawnService,
    database_url,
    held_fraud_server,
    json_logs,
    new_user,
)

GRPCURL = Path(sys.executable).parent / "grpcurl"
HANG_GUARD = 120.0  # seconds; only so that a broken drain fails instead of hanging


def start_wallet_process(spawn: SpawnService, url: str, **env: str) -> ServiceProcess:
    """`python -m wallet_service` on a free port, serving; `.address` is where."""
    addr = free_address()
    process = spawn(
        "wallet",
        "wallet_service",
        APP_ENV="test",
        WALLET_ADDR=addr,
        WALLET_DATABASE_URL=url,
        JWT_SECRET_KEY=TEST_JWT_SECRET,
        # the in-process seed rule unless a test names a fraud service
        **{"FRAUD_ADDR": "", **env},
    )
    process.address = addr
    process.start()
    process.wait_grpc_serving(addr, timeout=HANG_GUARD)
    return process


def stub_of(process: ServiceProcess) -> wallet_pb2_grpc.WalletServiceStub:
    return wallet_pb2_grpc.WalletServiceStub(grpc.insecure_channel(process.address))


@pytest.fixture
def wallet_process(spawn: SpawnService, tmp_path: Path) -> ServiceProcess:
    return start_wallet_process(spawn, f"sqlite:///{tmp_path / 'wallet.db'}")


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


@pytest.fixture
def held_fraud() -> Iterator[tuple[str, HeldFraud]]:
    with held_fraud_server(HANG_GUARD) as served:
        yield served


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


def logged(process: ServiceProcess, msg: str) -> bool:
    return any(line.get("msg") == msg for line in json_logs(process))


@pytest.mark.parametrize("repeated", [False, True], ids=["sigterm-once", "sigterm-repeated"])
def test_sigterm_drains_a_call_in_flight_and_exits_zero(
    spawn: SpawnService, tmp_path: Path, held_fraud: tuple[str, HeldFraud], repeated: bool
) -> None:
    """A deposit is held in flight (the fraud stand-in has not answered) when SIGTERM comes;
    the wallet stops taking work, lets the deposit finish, and exits 0. A second SIGTERM
    during the drain (an impatient operator, or a supervisor that repeats it), and more
    until the process is gone, change nothing: the drain goes on and the exit code is 0."""
    fraud_addr, fraud = held_fraud
    process = start_wallet_process(
        spawn,
        f"sqlite:///{tmp_path / 'drain.db'}",
        FRAUD_ADDR=fraud_addr,
        FRAUD_TIMEOUT_MS=str(int(HANG_GUARD * 1000)),  # held, not timed out
        WALLET_GRACE_SECONDS=str(int(HANG_GUARD)),
    )
    stub = stub_of(process)
    _, auth = new_user(stub)
    call = stub.Deposit.future(
        pb.DepositRequest(amount="1.00", currency="USD", idempotency_key="in-flight"),
        metadata=auth,
        timeout=HANG_GUARD,
    )
    assert fraud.scoring.wait(HANG_GUARD), "the deposit never reached the fraud service"
    process.signal(signal.SIGTERM)  # with the deposit in flight
    wait_until_draining(process.address)
    if repeated:
        process.signal(signal.SIGTERM)  # again, while draining
        assert wait_for(lambda: not process.alive or logged(process, "still draining"), HANG_GUARD)
    assert not call.done()  # SIGTERM did not cut it off
    fraud.release.set()
    reply = call.result(timeout=HANG_GUARD)
    assert (reply.transaction.status, reply.balance) == ("completed", "1.00")
    if repeated:
        # And on, until it has exited: none may land where it would end the process.
        while process.alive:
            process.signal(signal.SIGTERM)
            time.sleep(0.001)
    assert process.wait(timeout=HANG_GUARD) == 0
    lines = json_logs(process)
    assert [line["msg"] for line in lines if line.get("msg") == "stopping"] == ["stopping"]
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
    backend: str, spawn: SpawnService, tmp_path: Path, pg_database_factory: CreateDatabase
) -> None:
    url = database_url(backend, tmp_path, pg_database_factory)
    process = start_wallet_process(spawn, url)
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
    process.kill9()  # no chance to flush or close anything
    stop.set()
    for writer in writers:
        writer.join(timeout=10)
    seen = list(acknowledged)

    process.start()
    process.wait_grpc_serving(process.address, timeout=HANG_GUARD)
    stub = stub_of(process)
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
    assert process.terminate(timeout=HANG_GUARD) == 0
