"""Races over real gRPC: no overdraft, no lost update, one movement per idempotency key.

Each race runs on both stores, with group commit on (one writer thread batches the
movements) and off (each request thread writes its own transaction, so the database locks
themselves are contended). Every race is released by a barrier, and each test asserts
that its calls really overlapped, counted by events, not by time: the writer's
`overlapped` (movements in a shared batch, or writes started while another was running)
or the sender turns' `contended` (calls of one sender that found its turn taken).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import grpc
import pytest
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.support import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    CreateDatabase,
    RunningWallet,
    bearer,
    database_url,
    error_reason,
    login,
    new_user,
    start_wallet,
    wallet_settings,
)
from wallet_service.ledger import verify_ledger

Stub = wallet_pb2_grpc.WalletServiceStub
Auth = tuple[tuple[str, str], ...]
T = TypeVar("T")
RACERS = 60
CALL_TIMEOUT = 60.0  # a hang guard only


@pytest.fixture(
    scope="module",
    params=[
        ("sqlite", "true"),
        ("sqlite", "false"),
        pytest.param(("postgres", "true"), marks=pytest.mark.postgres),
        pytest.param(("postgres", "false"), marks=pytest.mark.postgres),
    ],
    ids=["sqlite-group-commit", "sqlite-direct", "postgres-group-commit", "postgres-direct"],
)
def racing(
    request: pytest.FixtureRequest,
    fraud_addr: str,
    tmp_path_factory: pytest.TempPathFactory,
    pg_database_factory: CreateDatabase,
) -> Iterator[tuple[RunningWallet, Stub]]:
    backend, group_commit = request.param
    url = database_url(backend, tmp_path_factory.mktemp("race"), pg_database_factory)
    running = start_wallet(
        wallet_settings(url, fraud_addr, WALLET_GROUP_COMMIT=group_commit), backend
    )
    with grpc.insecure_channel(running.addr) as channel:
        yield running, wallet_pb2_grpc.WalletServiceStub(channel)
    running.server.stop(0)


def race(calls: list[Callable[[], T]]) -> list[T]:
    """Run every call in its own thread, all released by one barrier."""
    barrier = threading.Barrier(len(calls))

    def released(call: Callable[[], T]) -> T:
        barrier.wait(timeout=CALL_TIMEOUT)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(released, calls))


def outcome(call: Callable[[], object]) -> str:
    try:
        call()
        return "ok"
    except grpc.RpcError as error:
        return error_reason(error)


class Overlap:
    """Counts, across one race, the events that prove its calls met."""

    def __init__(self, running: RunningWallet) -> None:
        self.running = running
        self.writes = running.server.service.writer.overlapped
        self.turns = running.store.sender_turns.contended

    def writes_overlapped(self) -> int:
        return self.running.server.service.writer.overlapped - self.writes

    def turns_contended(self) -> int:
        return self.running.store.sender_turns.contended - self.turns


ROUNDS = 5  # a barrier makes overlap all but certain; a round that happened not to meet reruns


def until_overlapped(round_: Callable[[], int]) -> int:
    """Run a race `round_` (which asserts its own invariants and returns how many overlap
    events it counted) until one round counts any, at most ROUNDS times. Every round's
    invariants hold whatever happens; the overlap proves the race was a race."""
    counted = 0
    for _ in range(ROUNDS):
        counted = round_()
        if counted > 0:
            break
    return counted


def usd(stub: Stub, auth: Auth, currency: str = "USD") -> str:
    reply = stub.GetBalance(pb.GetBalanceRequest(currency=currency), metadata=auth)
    return str(reply.balance)


def test_racing_withdrawals_and_transfers_never_overdraw(
    racing: tuple[RunningWallet, Stub],
) -> None:
    """Six payers spend twice what they hold at once: withdrawals all credit the one
    external account and transfers three shared receivers, so rows are contended."""
    running, stub = racing

    def round_() -> int:
        payers = [new_user(stub)[1] for _ in range(6)]
        receivers = [new_user(stub)[0] for _ in range(3)]
        for auth in payers:
            stub.Deposit(pb.DepositRequest(amount="5.00", currency="USD"), metadata=auth)

        def spend(i: int) -> Callable[[], str]:
            auth = payers[i % len(payers)]
            if i % 2:
                request = pb.WithdrawRequest(amount="1.00", currency="USD")
                return lambda: outcome(lambda: stub.Withdraw(request, metadata=auth))
            to = receivers[i % len(receivers)]
            transfer = pb.TransferRequest(to_username=to, amount="1.00", currency="USD")
            return lambda: outcome(lambda: stub.Transfer(transfer, metadata=auth))

        overlap = Overlap(running)
        results = Counter(race([spend(i) for i in range(RACERS)]))
        # Exactly what the funds allowed succeeded; every other call was a clean refusal.
        assert results == {"ok": 30, "insufficient_funds": RACERS - 30}, results
        assert all(usd(stub, auth) == "0.00" for auth in payers)
        assert verify_ledger(running.store) == []
        return overlap.writes_overlapped()

    assert until_overlapped(round_) > 0


def test_reversals_racing_the_owner_never_overdraw(racing: tuple[RunningWallet, Stub]) -> None:
    """An admin's reversals and the owner's withdrawals debit the same account from two
    initiators at once, so only the database's locks keep it from going negative."""
    running, stub = racing

    def round_() -> int:
        admin = bearer(login(stub, ADMIN_USERNAME, ADMIN_PASSWORD))
        _, payer = new_user(stub)
        payee, payee_auth = new_user(stub)
        stub.Deposit(pb.DepositRequest(amount="20.00", currency="USD"), metadata=payer)
        transfer = pb.TransferRequest(to_username=payee, amount="1.00", currency="USD")
        incoming = [stub.Transfer(transfer, metadata=payer).transaction.id for _ in range(20)]

        def reverse(tx_id: str) -> Callable[[], str]:
            request = pb.ReverseTransactionRequest(transaction_id=tx_id, reason="race")
            return lambda: outcome(lambda: stub.ReverseTransaction(request, metadata=admin))

        withdraw = pb.WithdrawRequest(amount="1.00", currency="USD")
        spend = [lambda: outcome(lambda: stub.Withdraw(withdraw, metadata=payee_auth))] * 20
        overlap = Overlap(running)
        results = Counter(race([reverse(tx_id) for tx_id in incoming] + spend))
        assert results == {"ok": 20, "insufficient_funds": 20}, results
        assert usd(stub, payee_auth) == "0.00"
        assert verify_ledger(running.store) == []
        return overlap.writes_overlapped()

    assert until_overlapped(round_) > 0


def test_opposite_transfers_do_not_deadlock_or_lose_updates(
    racing: tuple[RunningWallet, Stub],
) -> None:
    """Six users in a ring each send to both neighbours: every pair transfers both ways."""
    running, stub = racing

    def round_() -> int:
        ring = [new_user(stub) for _ in range(6)]
        for _, auth in ring:
            stub.Deposit(pb.DepositRequest(amount="100.00", currency="EUR"), metadata=auth)

        def move(i: int) -> Callable[[], str]:
            _, auth = ring[i % len(ring)]
            to, _ = ring[(i + (1 if i % 2 else -1)) % len(ring)]
            request = pb.TransferRequest(to_username=to, amount="0.10", currency="EUR")
            return lambda: outcome(
                lambda: stub.Transfer(request, metadata=auth, timeout=CALL_TIMEOUT)
            )

        overlap = Overlap(running)
        results = Counter(race([move(i) for i in range(RACERS * 2)]))
        assert results == {"ok": RACERS * 2}, results
        total = sum(int(usd(stub, auth, "EUR").replace(".", "")) for _, auth in ring)
        assert total == 60000  # 600.00 EUR: nothing created, nothing lost
        assert verify_ledger(running.store) == []
        return overlap.writes_overlapped()

    assert until_overlapped(round_) > 0


def test_same_key_sent_concurrently_moves_money_once(racing: tuple[RunningWallet, Stub]) -> None:
    running, stub = racing

    def round_() -> int:
        _, auth = new_user(stub)
        stub.Deposit(pb.DepositRequest(amount="50.00", currency="GBP"), metadata=auth)
        request = pb.WithdrawRequest(amount="20.00", currency="GBP", idempotency_key="same-key")

        def withdraw() -> tuple[str, bool]:
            reply = stub.Withdraw(request, metadata=auth, timeout=CALL_TIMEOUT)
            return reply.transaction.id, reply.replayed

        overlap = Overlap(running)
        replies = race([withdraw] * RACERS)
        assert len({tx_id for tx_id, _ in replies}) == 1
        assert sum(1 for _, replayed in replies if not replayed) == 1
        assert usd(stub, auth, "GBP") == "30.00"
        assert verify_ledger(running.store) == []
        # One sender: the calls met at its turn (the writer sees them one at a time).
        return overlap.turns_contended()

    assert until_overlapped(round_) > 0
