"""Two wallet replicas on one PostgreSQL database, driven concurrently over gRPC.

What a client sees (no internal errors, no lost acknowledged operation, the same key moves
money once) and what the database holds afterwards (balance = sum of entries, nothing
negative, per-currency totals = deposits - withdrawals, no deadlock detected).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import pytest
from sqlalchemy import func, select
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.support import (
    STRUCTURING,
    VELOCITY,
    Replicas,
    bearer,
    deadlock_count,
    error_reason,
    hits,
    login,
    register,
    run_in,
)
from wallet_service.ledger import verify_ledger
from wallet_service.schema import accounts, ledger_entries, transactions, users

pytestmark = pytest.mark.postgres

Metadata = tuple[tuple[str, str], ...]
Stub = wallet_pb2_grpc.WalletServiceStub

CURRENCIES = ("USD", "EUR")
USERS = 4
CLIENTS = 16
OPS_PER_CLIENT = 30
INITIAL_MINOR = 50_00
# Small amounts keep most transfers succeeding; the large ones run accounts dry on purpose.
AMOUNTS_MINOR = (1, 1_00, 7_50, 20_00, 45_00, 90_00)
CALL_TIMEOUT = 30.0
# An expected refusal; anything else (INTERNAL, UNKNOWN, ABORTED, UNAVAILABLE...) is a bug.
EXPECTED_REFUSALS = {(grpc.StatusCode.FAILED_PRECONDITION, "insufficient_funds")}


def text_amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def new_client(stub: Stub) -> tuple[str, Metadata]:
    name = register(stub)
    return name, bearer(login(stub, name))


def refusal(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    reason = error_reason(error) or "<no ErrorInfo>"
    return error.code(), reason  # type: ignore[attr-defined]


@dataclass
class Tally:
    """What the clients were told, per currency and overall."""

    deposited: Counter[str] = field(default_factory=Counter)
    withdrawn: Counter[str] = field(default_factory=Counter)
    completed_ids: set[str] = field(default_factory=set)
    refusals: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def move(
    stub: Stub, meta: Metadata, op: str, currency: str, minor: int, to_username: str = ""
) -> wallet_pb2.MovementResponse:
    """One deposit, withdrawal or transfer with a fresh idempotency key."""
    amount, key = text_amount(minor), uuid.uuid4().hex
    if op == "deposit":
        return stub.Deposit(
            wallet_pb2.DepositRequest(amount=amount, currency=currency, idempotency_key=key),
            metadata=meta,
            timeout=CALL_TIMEOUT,
        )
    if op == "withdraw":
        return stub.Withdraw(
            wallet_pb2.WithdrawRequest(amount=amount, currency=currency, idempotency_key=key),
            metadata=meta,
            timeout=CALL_TIMEOUT,
        )
    return stub.Transfer(
        wallet_pb2.TransferRequest(
            to_username=to_username, amount=amount, currency=currency, idempotency_key=key
        ),
        metadata=meta,
        timeout=CALL_TIMEOUT,
    )


def run_op(
    tally: Tally,
    stub: Stub,
    meta: Metadata,
    op: str,
    currency: str,
    minor: int,
    to_username: str = "",
) -> None:
    """Send one movement and record what the client was told."""
    try:
        reply = move(stub, meta, op, currency, minor, to_username)
    except grpc.RpcError as error:
        code, reason = refusal(error)
        with tally.lock:
            if (code, reason) in EXPECTED_REFUSALS:
                tally.refusals[reason] += 1
            else:
                tally.unexpected.append(f"{op} {currency} {minor}: {code.name} {reason}")
        return
    with tally.lock:
        tally.completed_ids.add(reply.transaction.id)
        if op == "deposit":
            tally.deposited[currency] += minor
        elif op == "withdraw":
            tally.withdrawn[currency] += minor


def test_concurrent_transfers_through_two_replicas_keep_the_books(replicas: Replicas) -> None:
    stubs = replicas.stubs
    clients = [new_client(stubs[i % 2]) for i in range(USERS)]
    tally = Tally()
    for i, (_, meta) in enumerate(clients):
        for currency in CURRENCIES:
            run_op(tally, stubs[i % 2], meta, "deposit", currency, INITIAL_MINOR)
    assert not tally.unexpected, tally.unexpected

    start = threading.Barrier(CLIENTS)

    def client(worker: int) -> None:
        rng = random.Random(worker)
        start.wait()
        for n in range(OPS_PER_CLIENT):
            stub = stubs[(worker + n) % 2]  # every client alternates between the replicas
            sender = rng.randrange(USERS)
            currency = rng.choice(CURRENCIES)
            minor = rng.choice(AMOUNTS_MINOR)
            roll = rng.random()
            if roll < 0.8:
                # Opposite directions on purpose: even workers send u -> u+1, odd ones u+1 -> u.
                peer = (sender + (1 if worker % 2 == 0 else USERS - 1)) % USERS
                op = "transfer"
            else:
                peer, op = sender, "deposit" if roll < 0.9 else "withdraw"
            run_op(tally, stub, clients[sender][1], op, currency, minor, clients[peer][0])

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        for future in [pool.submit(client, w) for w in range(CLIENTS)]:
            future.result()

    # What the clients saw: no internal error, and the contention was real.
    assert tally.unexpected == [], tally.unexpected[:20]
    assert tally.refusals["insufficient_funds"] > 0, "the workload never ran an account dry"
    assert len(tally.completed_ids) > CLIENTS * OPS_PER_CLIENT // 2

    # What the database holds.
    store = replicas.wallets[0].store
    assert verify_ledger(store) == []
    with store.engine.connect() as conn:
        entry_sums = dict(
            conn.execute(
                select(
                    ledger_entries.c.account_id, func.sum(ledger_entries.c.amount_minor)
                ).group_by(ledger_entries.c.account_id)
            ).all()
        )
        rows = conn.execute(
            select(accounts.c.id, accounts.c.kind, accounts.c.currency, accounts.c.balance_minor)
        ).all()
        completed = set(
            conn.execute(
                select(transactions.c.id).where(transactions.c.status == "completed")
            ).scalars()
        )
        user_count = conn.execute(select(func.count()).select_from(users)).scalar_one()
    assert user_count == USERS + 1  # + the bootstrapped admin
    per_currency: Counter[str] = Counter()
    for account_id, kind, currency, balance in rows:
        assert balance == entry_sums.get(account_id, 0), f"account {account_id}"
        if kind == "user":
            assert balance >= 0, f"account {account_id} overdrawn: {balance}"
            per_currency[currency] += balance
    for currency in CURRENCIES:
        expected = tally.deposited[currency] - tally.withdrawn[currency]
        assert per_currency[currency] == expected, currency
    # Every acknowledged movement is in the ledger, and nothing unacknowledged is.
    assert completed == tally.completed_ids

    # Both replicas report the balances the database holds.
    for name, meta in clients:
        user = store.get_user_by_username(name)
        assert user is not None
        held = {c: text_amount(minor) for c, minor in store.balances(user_id=user.id)}
        for stub in stubs:
            reply = stub.ListBalances(
                wallet_pb2.ListBalancesRequest(), metadata=meta, timeout=CALL_TIMEOUT
            )
            assert {b.currency: b.balance for b in reply.balances} == held, name
    # Updates in account-id order mean PostgreSQL never had to break a deadlock. The counter
    # is flushed when backends exit, so close the replicas' pools first.
    replicas.stop()
    assert deadlock_count(replicas.url) == 0


ROUNDS = 12


def send_pair(
    stubs: list[Stub], requests: list[wallet_pb2.TransferRequest], meta: Metadata
) -> list[wallet_pb2.MovementResponse | grpc.RpcError]:
    """Send requests[i] to replica i, all released at the same moment."""
    barrier = threading.Barrier(len(requests))

    def call(i: int) -> wallet_pb2.MovementResponse | grpc.RpcError:
        barrier.wait()
        try:
            return stubs[i].Transfer(requests[i], metadata=meta, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(call, range(len(requests))))


def test_same_key_at_the_same_moment_on_two_replicas_moves_money_once(
    replicas: Replicas,
) -> None:
    stubs = replicas.stubs
    sender, meta = new_client(stubs[0])
    recipient, _ = new_client(stubs[1])
    stubs[0].Deposit(
        wallet_pb2.DepositRequest(amount="100.00", currency="USD", idempotency_key="funding"),
        metadata=meta,
        timeout=CALL_TIMEOUT,
    )
    moved = 0
    for n in range(ROUNDS):
        key = f"pay-{n}"
        same = wallet_pb2.TransferRequest(
            to_username=recipient, amount="1.00", currency="USD", idempotency_key=key
        )
        replies = send_pair(stubs, [same, same], meta)
        failures = [r for r in replies if isinstance(r, grpc.RpcError)]
        assert failures == [], [refusal(f) for f in failures]
        ok = [r for r in replies if isinstance(r, wallet_pb2.MovementResponse)]
        assert len({r.transaction.id for r in ok}) == 1, f"round {n}: two transactions"
        assert sorted(r.replayed for r in ok) == [False, True], f"round {n}"
        assert {r.balance for r in ok} == {text_amount(100_00 - (moved + 1_00))}
        moved += 1_00

    # The same key with two different requests at once: one moves money, the other is told
    # the key is taken; never both.
    for n in range(ROUNDS):
        key = f"clash-{n}"
        first, second = (
            wallet_pb2.TransferRequest(
                to_username=recipient, amount=amount, currency="USD", idempotency_key=key
            )
            for amount in ("2.00", "3.00")
        )
        replies = send_pair(stubs, [first, second], meta)
        ok = [r for r in replies if isinstance(r, wallet_pb2.MovementResponse)]
        refused = [refusal(r) for r in replies if isinstance(r, grpc.RpcError)]
        assert len(ok) == 1, f"round {n}: {refused}"
        assert refused == [(grpc.StatusCode.ALREADY_EXISTS, "idempotency_key_reused")]
        moved += 2_00 if ok[0].transaction.amount == "2.00" else 3_00

    store = replicas.wallets[0].store
    assert verify_ledger(store) == []
    sender_user = store.get_user_by_username(sender)
    assert sender_user is not None
    assert store.balance(user_id=sender_user.id, currency="USD") == 100_00 - moved
    with store.engine.connect() as conn:
        keys = conn.execute(
            select(transactions.c.idempotency_key, func.count())
            .where(transactions.c.initiated_by == sender_user.id)
            .group_by(transactions.c.idempotency_key)
        ).all()
    assert len(keys) == 2 * ROUNDS + 1  # + the funding deposit
    assert all(count == 1 for _, count in keys)


def test_a_burst_over_two_replicas_is_scored_as_in_sequence(replicas: Replicas) -> None:
    """One sender's transfers, alternating between the replicas and released at once, get
    the verdicts the same transfers get one after another: the sender's turn is held in
    the database, not only in one process."""
    for scenario in (VELOCITY, STRUCTURING):
        in_sequence = run_in(replicas.stubs, scenario, at_once=False)
        assert hits(in_sequence, scenario.rule) == scenario.expected_hits, in_sequence
        assert run_in(replicas.stubs, scenario, at_once=True) == in_sequence
    assert verify_ledger(replicas.wallets[0].store) == []
