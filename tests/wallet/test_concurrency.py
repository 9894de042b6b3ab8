"""Races over real gRPC: no overdraft, no lost update, one movement per idempotency key."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.support import RunningWallet, error_reason, new_user

Stub = wallet_pb2_grpc.WalletServiceStub
RACERS = 60


def outcome(call: object) -> str:
    try:
        call()  # type: ignore[operator]
        return "ok"
    except grpc.RpcError as error:
        return error_reason(error)


def test_racing_withdrawals_and_transfers_never_overdraw(stub: Stub, wallet: RunningWallet) -> None:
    _, payer = new_user(stub)
    receivers = [new_user(stub)[0] for _ in range(3)]
    stub.Deposit(pb.DepositRequest(amount="25.00", currency="USD"), metadata=payer)

    def spend(i: int) -> str:
        if i % 2:
            return outcome(
                lambda: stub.Withdraw(
                    pb.WithdrawRequest(amount="1.00", currency="USD"), metadata=payer
                )
            )
        return outcome(
            lambda: stub.Transfer(
                pb.TransferRequest(to_username=receivers[i % 3], amount="1.00", currency="USD"),
                metadata=payer,
            )
        )

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        results = Counter(pool.map(spend, range(RACERS)))
    # Exactly what the funds allowed succeeded; every other call was a clean refusal.
    assert results == {"ok": 25, "insufficient_funds": RACERS - 25}, results
    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=payer).balance == "0.00"
    assert wallet.store.ledger_violations() == []


def test_opposite_transfers_do_not_deadlock_or_lose_updates(
    stub: Stub, wallet: RunningWallet
) -> None:
    a, a_auth = new_user(stub)
    b, b_auth = new_user(stub)
    for auth in (a_auth, b_auth):
        stub.Deposit(pb.DepositRequest(amount="100.00", currency="EUR"), metadata=auth)

    def move(i: int) -> str:
        auth, to = (a_auth, b) if i % 2 else (b_auth, a)
        return outcome(
            lambda: stub.Transfer(
                pb.TransferRequest(to_username=to, amount="0.10", currency="EUR"), metadata=auth
            )
        )

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        results = Counter(pool.map(move, range(RACERS * 2)))
    assert results == {"ok": RACERS * 2}, results
    total = sum(
        int(
            stub.GetBalance(pb.GetBalanceRequest(currency="EUR"), metadata=auth).balance.replace(
                ".", ""
            )
        )
        for auth in (a_auth, b_auth)
    )
    assert total == 20000  # 200.00 EUR: nothing created, nothing lost
    assert wallet.store.ledger_violations() == []


def test_same_key_sent_concurrently_moves_money_once(stub: Stub, wallet: RunningWallet) -> None:
    _, auth = new_user(stub)
    stub.Deposit(pb.DepositRequest(amount="50.00", currency="GBP"), metadata=auth)

    def withdraw(_: int) -> tuple[str, bool]:
        reply = stub.Withdraw(
            pb.WithdrawRequest(amount="20.00", currency="GBP", idempotency_key="same-key"),
            metadata=auth,
        )
        return reply.transaction.id, reply.replayed

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        replies = list(pool.map(withdraw, range(RACERS)))
    assert len({tx_id for tx_id, _ in replies}) == 1
    assert sum(1 for _, replayed in replies if not replayed) == 1
    assert stub.GetBalance(pb.GetBalanceRequest(currency="GBP"), metadata=auth).balance == "30.00"
    assert wallet.store.ledger_violations() == []
