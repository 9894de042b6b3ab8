"""WALLET_PROCESSES=2: two wallet processes serve one port under one supervisor; both
serve (counted by the pid on their access-log lines, not by timing), and SIGTERM to the
supervisor drains and stops both with exit status 0. SQLite refuses more than one."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import grpc
import pytest
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.wallet.test_process import HANG_GUARD, ROOT, WalletProcess, free_port

CONNECTIONS = 40  # the kernel spreads connections, not calls: one call per new channel


@pytest.mark.postgres
def test_two_processes_share_the_port_and_stop_together(pg_database_factory: object) -> None:
    url = pg_database_factory()  # type: ignore[operator]
    wallet = WalletProcess(url, free_port(), WALLET_PROCESSES="2", WALLET_GRACE_SECONDS="1")
    wallet.start()
    request_ids = set()
    try:
        for _ in range(CONNECTIONS):
            request_id = f"procs-{uuid.uuid4().hex[:12]}"
            request_ids.add(request_id)
            with grpc.insecure_channel(wallet.addr) as channel:
                stub = wallet_pb2_grpc.WalletServiceStub(channel)
                with pytest.raises(grpc.RpcError) as refused:  # no token: still served
                    stub.GetBalance(
                        pb.GetBalanceRequest(),
                        metadata=(("x-request-id", request_id),),
                        timeout=HANG_GUARD,
                    )
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        code = wallet.kill(signal.SIGTERM)
    lines = wallet.log_lines()
    served_by = {line["pid"] for line in lines if line.get("request_id") in request_ids}
    assert code == 0, [x for x in lines if x["logger"].startswith("wallet_service")]
    started = [line for line in lines if line.get("msg") == "wallet processes started"]
    assert len(started) == 1 and len(started[0]["pids"]) == 2
    assert served_by == set(started[0]["pids"])  # both children served, nobody else
    stopped = [line for line in lines if line.get("msg") == "wallet processes stopped"]
    assert stopped and stopped[0]["exit_codes"] == [0, 0]


def test_sqlite_refuses_more_than_one_process(tmp_path: object) -> None:
    wallet = WalletProcess(f"sqlite:///{tmp_path}/w.db", free_port(), WALLET_PROCESSES="2")
    done = subprocess.run(
        [sys.executable, "-m", "wallet_service"],
        cwd=ROOT,
        env=wallet.env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )
    assert done.returncode == 2
    assert "WALLET_PROCESSES" in done.stderr
