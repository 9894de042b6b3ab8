"""WALLET_PROCESSES=2: two wallet processes serve one port under one supervisor; both
serve (counted by the pid on their access-log lines, not by timing), and SIGTERM to the
supervisor drains and stops both with exit status 0. SQLite refuses more than one."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from common.processes import free_address
from tests.support import (
    TEST_JWT_SECRET,
    CreateDatabase,
    SpawnService,
    json_logs,
    run_to_exit,
    wait_for_log,
)

HANG_GUARD = 120.0  # seconds; only so that a broken start or drain fails instead of hanging
CONNECTIONS = 40  # the kernel spreads connections, not calls: one call per new channel


def wallet_env(url: str, addr: str, processes: str) -> dict[str, str]:
    return {
        "APP_ENV": "test",
        "WALLET_ADDR": addr,
        "WALLET_DATABASE_URL": url,
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        "FRAUD_ADDR": "",
        "WALLET_PROCESSES": processes,
        "WALLET_GRACE_SECONDS": "1",
    }


@pytest.mark.postgres
def test_two_processes_share_the_port_and_stop_together(
    spawn: SpawnService, pg_database_factory: CreateDatabase
) -> None:
    addr = free_address()
    wallet = spawn("wallet", "wallet_service", **wallet_env(pg_database_factory(), addr, "2"))
    wallet.start()
    started = wait_for_log(wallet, "wallet processes started", timeout=HANG_GUARD)
    assert len(started["pids"]) == 2
    request_ids = set()
    for _ in range(CONNECTIONS):
        request_id = f"procs-{uuid.uuid4().hex[:12]}"
        request_ids.add(request_id)
        with grpc.insecure_channel(addr) as channel:
            stub = wallet_pb2_grpc.WalletServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:  # no token: still served
                stub.GetBalance(
                    pb.GetBalanceRequest(),
                    metadata=(("x-request-id", request_id),),
                    timeout=HANG_GUARD,
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wallet.terminate(timeout=HANG_GUARD) == 0
    lines = json_logs(wallet)
    served_by = {line["pid"] for line in lines if line.get("request_id") in request_ids}
    assert served_by == set(started["pids"])  # both children served, nobody else
    stopped = [line for line in lines if line.get("msg") == "wallet processes stopped"]
    assert len(stopped) == 1 and stopped[0]["exit_codes"] == [0, 0]


def _free_port_pair() -> int:
    """A port N with N + 1 free too (process i of the supervisor serves metrics on N + i)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            base = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", base + 1))
                except OSError:
                    continue
        return base
    raise AssertionError("no two consecutive free ports")


@pytest.mark.postgres
def test_each_process_serves_its_own_metrics_port(
    spawn: SpawnService, pg_database_factory: CreateDatabase
) -> None:
    base = _free_port_pair()
    env = wallet_env(pg_database_factory(), free_address(), "2")
    wallet = spawn("wallet", "wallet_service", WALLET_METRICS_PORT=str(base), **env)
    wallet.start()
    wait_for_log(wallet, "wallet processes started", timeout=HANG_GUARD)
    for port in (base, base + 1):
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=HANG_GUARD)
        assert scraped.status_code == 200 and "grpc_server_handled_total" in scraped.text
    assert wallet.terminate(timeout=HANG_GUARD) == 0


def test_sqlite_refuses_more_than_one_process(spawn: SpawnService, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    code, output = run_to_exit(
        spawn("wallet", "wallet_service", **wallet_env(url, free_address(), "2"))
    )
    assert code == 2
    assert "WALLET_PROCESSES" in output
