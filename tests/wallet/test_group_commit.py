"""One batch, many movements: each stands or falls on its own (both stores)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.support import (
    CreateDatabase,
    RunningWallet,
    database_url,
    error_reason,
    new_user,
    start_wallet,
    wallet_settings,
)
from wallet_service.errors import AlreadyExists, FailedPrecondition, NotFound
from wallet_service.group_commit import DirectWriter
from wallet_service.ids import uuid7
from wallet_service.ledger import request_fingerprint, verify_ledger
from wallet_service.models import MovementOutcome, MovementPlan, TxType, User, utc_now


def plan(payer: User, payee: User | None, amount: int, key: str | None = None) -> MovementPlan:
    tx_type = TxType.TRANSFER if payee else TxType.WITHDRAWAL
    return MovementPlan(
        tx_id=uuid7(),
        type=tx_type,
        currency="USD",
        amount_minor=amount,
        debit_user_id=payer.id,
        credit_user_id=payee.id if payee else None,
        debit_username=payer.username,
        credit_username=payee.username if payee else None,
        initiated_by=payer.id,
        idempotency_key=key,
        request_fingerprint=request_fingerprint(
            tx_type=tx_type,
            currency="USD",
            amount_minor=amount,
            counterparty=payee.id if payee else None,
        ),
        verdict=None,
        created_at=utc_now(),
        report_balance_of=payer.id,
    )


def test_a_refused_movement_does_not_fail_its_batch(
    stub: wallet_pb2_grpc.WalletServiceStub, wallet: RunningWallet
) -> None:
    store = wallet.store
    names = [new_user(stub) for _ in range(3)]
    stub.Deposit(pb.DepositRequest(amount="10.00", currency="USD"), metadata=names[0][1])
    payer, payee, gone = (store.get_user_by_username(name) for name, _ in names)
    assert payer and payee and gone
    store.soft_delete_user(user_id=gone.id, now=utc_now(), require_zero_balances=True)

    batch = [
        plan(payer, payee, 300, key="a"),  # ok
        plan(payer, payee, 800, key="b"),  # overdraws after the first: refused
        plan(payer, payee, 300, key="a"),  # same key, same request: replays the first
        plan(payer, payee, 301, key="a"),  # same key, other request: refused
        plan(payer, gone, 100, key="c"),  # deleted recipient: refused
        plan(payer, None, 700, key="d"),  # withdraws exactly what is left: ok
        plan(payer, None, 1, key="e"),  # nothing left: refused
    ]
    results = store.apply_movements(batch)

    assert isinstance(results[0], MovementOutcome) and results[0].balance_after_minor == 700
    assert isinstance(results[1], FailedPrecondition) and results[1].code == "insufficient_funds"
    assert isinstance(results[2], MovementOutcome) and results[2].replayed
    assert results[2].transaction.id == results[0].transaction.id
    assert isinstance(results[3], AlreadyExists) and results[3].code == "idempotency_key_reused"
    assert isinstance(results[4], NotFound) and results[4].code == "recipient_not_found"
    assert isinstance(results[5], MovementOutcome) and results[5].balance_after_minor == 0
    assert isinstance(results[6], FailedPrecondition)
    assert store.balance(user_id=payer.id, currency="USD") == 0
    assert store.balance(user_id=payee.id, currency="USD") == 300
    # A later batch replays committed keys and still refuses reuse.
    again = store.apply_movements(
        [plan(payer, payee, 300, key="a"), plan(payer, None, 700, key="b")]
    )
    assert isinstance(again[0], MovementOutcome) and again[0].replayed
    assert again[0].transaction.id == results[0].transaction.id
    assert isinstance(again[1], FailedPrecondition)  # "b" never committed: decided afresh
    assert verify_ledger(store) == []


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_without_group_commit_the_same_guarantees_hold(
    tmp_path: Path, fraud_addr: str, pg_database_factory: CreateDatabase, backend: str
) -> None:
    """WALLET_GROUP_COMMIT=false: one transaction per movement, in the request thread."""
    url = database_url(backend, tmp_path, pg_database_factory)
    running = start_wallet(wallet_settings(url, fraud_addr, WALLET_GROUP_COMMIT="false"), backend)
    try:
        writer = running.server.service.writer
        assert isinstance(getattr(writer, "inner", writer), DirectWriter)
        with grpc.insecure_channel(running.addr) as channel:
            stub = wallet_pb2_grpc.WalletServiceStub(channel)
            _, auth = new_user(stub)
            stub.Deposit(pb.DepositRequest(amount="5.00", currency="USD"), metadata=auth)

            def withdraw(i: int) -> bool:
                try:
                    stub.Withdraw(
                        pb.WithdrawRequest(amount="1.00", currency="USD", idempotency_key=f"w{i}"),
                        metadata=auth,
                    )
                    return True
                except grpc.RpcError as error:
                    assert error_reason(error) == "insufficient_funds"
                    return False

            with ThreadPoolExecutor(max_workers=20) as pool:
                assert sum(pool.map(withdraw, range(20))) == 5
            balance = stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth)
            assert balance.balance == "0.00"
        assert verify_ledger(running.store) == []
    finally:
        running.server.stop(0)
