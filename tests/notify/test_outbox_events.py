"""Events are written to the outbox in the same transaction as the change they report: a
committed change has its event, a refused one none. Both stores (the `wallet` fixture)."""

from __future__ import annotations

from typing import Any

import grpc
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.support import RunningWallet, admin_auth, expect_error, new_user
from tests.support.notify import events_about

Stub = wallet_pb2_grpc.WalletServiceStub


def test_flag_review_freeze_and_reversal_each_write_one_event(
    stub: Stub, wallet: RunningWallet
) -> None:
    admin = admin_auth(stub)
    user, auth = new_user(stub)
    small = stub.Deposit(pb.DepositRequest(amount="5.00", currency="USD"), metadata=auth)
    assert events_about(wallet, "transaction_id", small.transaction.id) == []
    big = stub.Deposit(pb.DepositRequest(amount="10000.00", currency="USD"), metadata=auth)
    tx_id = big.transaction.id
    [flagged] = events_about(wallet, "transaction_id", tx_id)
    assert flagged["type"] == "transaction.flagged" and flagged["status"] == "pending"
    assert flagged["data"]["amount"] == "10000.00" and flagged["data"]["currency"] == "USD"
    assert flagged["data"]["to_username"] == user and flagged["data"]["fraud_reasons"]

    stub.ReviewTransaction(
        pb.ReviewTransactionRequest(
            transaction_id=tx_id, resolution="confirmed_fraud", note="stolen", freeze=True
        ),
        metadata=admin,
    )
    reviewed = [
        e for e in events_about(wallet, "transaction_id", tx_id) if e["id"] != flagged["id"]
    ]
    assert [e["type"] for e in reviewed] == ["transaction.reviewed"]
    assert reviewed[0]["data"]["review_status"] == "confirmed_fraud"
    [frozen] = events_about(wallet, "username", user)
    assert frozen["type"] == "user.frozen" and frozen["data"]["reason"] == "stolen"
    # Freezing a frozen user changes nothing and reports nothing.
    stub.FreezeUser(pb.FreezeUserRequest(username=user, reason="again"), metadata=admin)
    assert len(events_about(wallet, "username", user)) == 1

    reversal = stub.ReverseTransaction(
        pb.ReverseTransactionRequest(transaction_id=tx_id, reason="chargeback"), metadata=admin
    )
    [reversed_] = events_about(wallet, "transaction_id", reversal.transaction.id)
    assert reversed_["type"] == "transaction.reversed"
    assert reversed_["data"]["reverses_transaction_id"] == tx_id


def test_transfer_received_and_refusals_write_nothing(stub: Stub, wallet: RunningWallet) -> None:
    _, auth = new_user(stub)
    recipient, _ = new_user(stub)
    stub.Deposit(pb.DepositRequest(amount="50.00", currency="USD"), metadata=auth)
    sent = stub.Transfer(
        pb.TransferRequest(to_username=recipient, amount="20.00", currency="USD"), metadata=auth
    )
    [received] = events_about(wallet, "transaction_id", sent.transaction.id)
    assert received["type"] == "transfer.received"
    assert received["data"]["to_username"] == recipient
    # A refused movement (here: not enough money) commits nothing, so reports nothing.
    expect_error(
        lambda: stub.Transfer(
            pb.TransferRequest(to_username=recipient, amount="999.00", currency="USD"),
            metadata=auth,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )
    assert len(events_about(wallet, "to_username", recipient)) == 1


def test_a_blocked_movement_reports_transaction_blocked(
    make_wallet: Any,
    blocking_fraud: str,
) -> None:
    running, stub = make_wallet(blocking_fraud)
    _, auth = new_user(stub)
    expect_error(
        lambda: stub.Deposit(pb.DepositRequest(amount="20000.00", currency="USD"), metadata=auth),
        grpc.StatusCode.FAILED_PRECONDITION,
        "transaction_blocked",
    )
    history = stub.ListTransactions(pb.ListTransactionsRequest(), metadata=auth).transactions
    [blocked] = events_about(running, "transaction_id", history[0].id)
    assert blocked["type"] == "transaction.blocked" and blocked["data"]["status"] == "rejected"
