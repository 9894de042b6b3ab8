"""The CPU budget of one wallet Transfer on PostgreSQL, in microseconds per stage.

    python -m bench.budget [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
                           [--calls 400]

One run, one fresh database. It starts a real `python -m fraud_service` and a real
`python -m wallet_service` (the gRPC server) and, in this process, the wallet's own use
cases over the same database (`build_service`, the code the servicer calls). Then:

- each stage of a transfer is called `--calls` times on its own in this thread, timed with
  `time.thread_time()` (CPU of this thread only: waiting for PostgreSQL or the fraud service
  costs nothing, so the other helpers' load on the machine barely moves the numbers);
- the fraud service's own CPU per Score is its process CPU (/proc) over those calls;
- the whole wallet process's CPU per `Transfer` is read from /proc around `--calls`
  serial gRPC Transfers; what the in-process stages do not explain is the gRPC server,
  the interceptors and the hand-offs between threads (the remainder row).

Microseconds are CPU, not wall time. The write rows are per movement, at group-commit
batches of 1 and of 16 (`SqlStore.apply_movements`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from bench.inprocess import PASSWORD, funded_users
from bench.procstat import process_cpu_seconds
from bench.services import JWT_SECRET, start_fraud, start_wallet
from common.pg_databases import scratch_database
from wallet_service.ids import uuid7
from wallet_service.ledger import request_fingerprint
from wallet_service.models import (
    Decision,
    FraudVerdict,
    MovementPlan,
    TxType,
    User,
    utc_now,
)
from wallet_service.scoring import ScoreInput
from wallet_service.server import build_service
from wallet_service.service import WalletService
from wallet_service.servicer import WalletServicer
from wallet_service.settings import WalletSettings

ALLOW = FraudVerdict(0, Decision.ALLOW, (), "budget")


@dataclass
class Row:
    stage: str
    micros: float
    note: str = ""


def per_call(calls: int, fn: Callable[[int], Any]) -> float:
    """CPU microseconds of this thread per call of fn(i)."""
    fn(0)  # warm: statement caches, first connection
    start = time.thread_time()
    for i in range(calls):
        fn(i)
    return (time.thread_time() - start) / calls * 1e6


def _plan(sender: User, recipient: User, created: Any = None) -> MovementPlan:
    fingerprint = request_fingerprint(
        tx_type=TxType.TRANSFER, currency="USD", amount_minor=1, counterparty=recipient.id
    )
    return MovementPlan(
        tx_id=uuid7(),
        type=TxType.TRANSFER,
        currency="USD",
        amount_minor=1,
        debit_user_id=sender.id,
        credit_user_id=recipient.id,
        debit_username=sender.username,
        credit_username=recipient.username,
        initiated_by=sender.id,
        idempotency_key=uuid.uuid4().hex,
        request_fingerprint=fingerprint,
        verdict=ALLOW,
        created_at=created or utc_now(),
        report_balance_of=sender.id,
    )


def stage_rows(service: WalletService, calls: int, fraud_pid: int) -> list[Row]:
    store: Any = service.store
    names, tokens = funded_users(service, "bud", "90000.00")
    alice, bob = (service.authenticate_user(t) for t in tokens)
    now = utc_now()
    rows = [
        Row("JWT verify", per_call(calls, lambda i: service.tokens.verify(tokens[0]))),
        Row(
            "JWT + caller lookup",
            per_call(calls, lambda i: service.authenticate_user(tokens[0])),
            "the auth interceptor's call",
        ),
        Row(
            "balance query",
            per_call(calls, lambda i: store.balance(user_id=alice.id, currency="USD")),
            "GetBalance's query (to isolate the server)",
        ),
        Row("recipient lookup", per_call(calls, lambda i: service._live_user(names[1]))),
        Row(
            "idempotency probe",
            per_call(
                calls,
                lambda i: store.find_by_idempotency_key(initiated_by=alice.id, key=f"k{i}"),
            ),
            "a fresh key (misses)",
        ),
        Row(
            "features query",
            per_call(
                calls,
                lambda i: store.movement_features(
                    user_id=alice.id, currency="USD", debit_user_id=alice.id, now=now
                ),
            ),
            "2 statements",
        ),
        Row(
            "sender turn (take + release)",
            per_call(calls, lambda i: _turn(store, alice.id)),
            "in-process lock + pg_advisory_lock/unlock on a pooled connection",
        ),
    ]
    features = store.movement_features(
        user_id=alice.id, currency="USD", debit_user_id=alice.id, now=now
    )
    movement = ScoreInput(TxType.TRANSFER, 1, "USD", 2, alice.id, bob.id, now, features)
    fraud_before = process_cpu_seconds(fraud_pid) or 0.0
    client = per_call(calls, lambda i: service.scorer.score(movement))
    fraud_after = process_cpu_seconds(fraud_pid) or 0.0
    rows.append(Row("fraud RPC, client side", client, "proto build + grpc sync call"))
    rows.append(
        Row(
            "fraud RPC, fraud server side",
            (fraud_after - fraud_before) / (calls + 1) * 1e6,
            "its own process (/proc, 10 ms ticks)",
        )
    )
    rows.append(
        Row(
            "write per movement, batch of 1",
            per_call(calls, lambda i: store.apply_movements([_plan(alice, bob)])),
            "lock users + accounts, prior keys, decide, UPDATE/INSERT x2, COMMIT",
        )
    )
    batches = max(1, calls // 16)
    rows.append(
        Row(
            "write per movement, batch of 16",
            per_call(
                batches,
                lambda i: store.apply_movements(
                    [_plan(*((alice, bob) if k % 2 else (bob, alice))) for k in range(16)]
                ),
            )
            / 16,
        )
    )
    outcome = service.transfer(alice, to_username=names[1], amount="0.01", currency="USD", key="")
    servicer = WalletServicer(service)
    rows.append(
        Row(
            "response building",
            per_call(calls, lambda i: servicer._movement(outcome).SerializeToString()),
            "MovementResponse + serialisation",
        )
    )
    return rows


def _turn(store: Any, user_id: str) -> None:
    with store.sender_turn(user_id):
        pass


def grpc_cpu(address: str, wallet_pid: int, calls: int) -> tuple[float, float]:
    """The wallet process's CPU per serial gRPC Transfer and per GetBalance, in us."""
    with grpc.insecure_channel(address) as channel:
        stub = wallet_pb2_grpc.WalletServiceStub(channel)
        names = [f"bg_{i}_{uuid.uuid4().hex[:6]}" for i in range(2)]
        meta = []
        for name in names:
            stub.Register(wallet_pb2.RegisterRequest(username=name, password=PASSWORD))
            token = stub.Login(wallet_pb2.LoginRequest(username=name, password=PASSWORD))
            meta.append((("authorization", f"Bearer {token.access_token}"),))
            stub.Deposit(
                wallet_pb2.DepositRequest(amount="90000", currency="USD"), metadata=meta[-1]
            )

        def transfer(i: int) -> None:
            stub.Transfer(
                wallet_pb2.TransferRequest(
                    to_username=names[(i + 1) % 2],
                    amount="0.01",
                    currency="USD",
                    idempotency_key=uuid.uuid4().hex,
                ),
                metadata=meta[i % 2],
            )

        def balance(i: int) -> None:
            stub.GetBalance(wallet_pb2.GetBalanceRequest(currency="USD"), metadata=meta[i % 2])

        return _process_cpu(wallet_pid, calls, transfer), _process_cpu(wallet_pid, calls, balance)


def _process_cpu(pid: int, calls: int, fn: Callable[[int], None]) -> float:
    """CPU microseconds of process `pid` per call of fn(i) (serial calls)."""
    fn(0)
    before = process_cpu_seconds(pid) or 0.0
    for i in range(calls):
        fn(i)
    return ((process_cpu_seconds(pid) or 0.0) - before) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args(argv)
    with scratch_database(args.url, "bench_budget") as url:
        _measure(url, args.calls)
    return 0


def _measure(url: str, calls: int) -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="bench-budget-"))
    fraud = start_fraud(log_dir)
    wallet = start_wallet(
        log_dir, database_url=url, fraud_addr=fraud.address, workers=32, pool_size=20
    )
    try:
        env = {
            "APP_ENV": "test",
            "WALLET_DATABASE_URL": url,
            "JWT_SECRET_KEY": JWT_SECRET,
            "FRAUD_ADDR": fraud.address,
            "MONEY_RATE_LIMIT_PER_USER": "0",
            "WALLET_REGISTER_RATE_LIMIT_PER_PEER": "0",
            "WALLET_LOGIN_RATE_LIMIT_PER_PEER": "0",
        }
        service = build_service(WalletSettings.from_env(env))
        rows = stage_rows(service, calls, fraud.pid)
        whole, balance_rpc = grpc_cpu(wallet.address, wallet.pid, calls)
        _print(rows, whole, balance_rpc)
    finally:
        wallet.terminate()
        fraud.terminate()


def _print(rows: list[Row], whole: float, balance_rpc: float) -> None:
    wallet_stages = [
        r
        for r in rows
        if r.stage not in ("JWT verify", "fraud RPC, fraud server side", "balance query")
        and r.stage != "write per movement, batch of 16"
    ]
    explained = sum(r.micros for r in wallet_stages)
    print("| stage | CPU us per transfer | what |")
    print("|---|---:|---|")
    for r in rows:
        print(f"| {r.stage} | {r.micros:,.0f} | {r.note} |")
    by_stage = {r.stage: r.micros for r in rows}
    server = balance_rpc - by_stage["JWT + caller lookup"] - by_stage["balance query"]
    print(
        f"| gRPC server + interceptors (GetBalance minus its two queries) | {server:,.0f} | "
        f"wallet process CPU per GetBalance ({balance_rpc:,.0f}) minus its in-process work |"
    )
    rest = whole - explained - server
    print(
        f"| not explained above: thread hand-offs, group-commit writer, logs | {rest:,.0f} | "
        "whole Transfer minus the wallet rows above (write at batch of 1) and the server |"
    )
    print(f"| **wallet process, whole Transfer over gRPC** | **{whole:,.0f}** | /proc, serial |")


if __name__ == "__main__":
    raise SystemExit(main())
