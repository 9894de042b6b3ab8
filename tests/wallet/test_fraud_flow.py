"""The wallet with the real fraud service: flags, blocks, outages, deadlines, admin review."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from common.processes import free_address
from fraud_service.server import create_server as create_fraud_server
from fraud_service.settings import FraudSettings
from tests.support import (
    HeldFraud,
    RunningWallet,
    admin_auth,
    count_rows,
    expect_error,
    held_fraud_server,
    new_user,
    seen_by_admin,
)
from wallet_service.ledger import verify_ledger
from wallet_service.schema import ledger_entries, transactions

Stub = wallet_pb2_grpc.WalletServiceStub


def flagged_ids(stub: Stub, auth: tuple[tuple[str, str], ...], status: str = "") -> set[str]:
    page = stub.ListFlaggedTransactions(
        pb.ListFlaggedTransactionsRequest(review_status=status, limit=200), metadata=auth
    )
    return {t.id for t in page.transactions}


def reasons_of(stub: Stub, reply: pb.MovementResponse) -> set[str]:
    return {r.rule_id for r in seen_by_admin(stub, reply.transaction.id).fraud_reasons}


def test_large_deposit_is_flagged_with_its_reason(stub: Stub) -> None:
    _, auth = new_user(stub)
    small = stub.Deposit(pb.DepositRequest(amount="9999.99", currency="USD"), metadata=auth)
    # (a brand-new account moving this much trips new_account, but not large_amount)
    assert "large_amount" not in reasons_of(stub, small)
    large = stub.Deposit(pb.DepositRequest(amount="10000.00", currency="USD"), metadata=auth)
    assert large.transaction.flagged and not large.transaction.fraud_reasons  # not the user's
    tx = seen_by_admin(stub, large.transaction.id)
    assert tx.flagged and tx.status == "completed" and tx.review_status == "pending"
    assert tx.fraud_decision == "REVIEW" and tx.fraud_score > 0
    assert "large_amount" in {r.rule_id for r in tx.fraud_reasons}
    assert large.balance == "19999.99"  # REVIEW completes the movement
    assert tx.id in flagged_ids(stub, admin_auth(stub), "pending")


def test_structuring_is_flagged(stub: Stub) -> None:
    _, auth = new_user(stub)
    replies = [
        stub.Deposit(pb.DepositRequest(amount="9500.00", currency="EUR"), metadata=auth)
        for _ in range(3)
    ]
    reasons = reasons_of(stub, replies[-1])
    assert "structuring" in reasons, reasons
    assert replies[-1].transaction.flagged


def test_features_from_the_ledger_reach_the_rules(stub: Stub) -> None:
    """Balance share and velocity need the wallet's features: balance and hourly count."""
    _, auth = new_user(stub)
    stub.Deposit(pb.DepositRequest(amount="2000.00", currency="GBP"), metadata=auth)
    big_share = stub.Withdraw(pb.WithdrawRequest(amount="1900.00", currency="GBP"), metadata=auth)
    assert "balance_share" in reasons_of(stub, big_share)
    replies = [
        stub.Deposit(pb.DepositRequest(amount="1.00", currency="GBP"), metadata=auth)
        for _ in range(8)
    ]
    assert "velocity" not in reasons_of(stub, replies[-2])
    assert "velocity" in reasons_of(stub, replies[-1])


def test_admin_review_flow(stub: Stub, wallet: RunningWallet) -> None:
    admin = admin_auth(stub)
    user, auth = new_user(stub)
    tx = stub.Deposit(
        pb.DepositRequest(amount="12000.00", currency="USD"), metadata=auth
    ).transaction
    expect_error(
        lambda: stub.ReviewTransaction(
            pb.ReviewTransactionRequest(transaction_id=tx.id, resolution="cleared"), metadata=auth
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "admin_required",
    )
    expect_error(
        lambda: stub.ReviewTransaction(
            pb.ReviewTransactionRequest(transaction_id=tx.id, resolution="maybe"), metadata=admin
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_review_status",
    )
    reviewed = stub.ReviewTransaction(
        pb.ReviewTransactionRequest(
            transaction_id=tx.id, resolution="confirmed_fraud", note="stolen card"
        ),
        metadata=admin,
    )
    assert reviewed.review_status == "confirmed_fraud" and reviewed.review_note == "stolen card"
    assert reviewed.reviewed_by and reviewed.reviewed_at.endswith("Z")
    expect_error(
        lambda: stub.ReviewTransaction(
            pb.ReviewTransactionRequest(transaction_id=tx.id, resolution="cleared"), metadata=admin
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "already_reviewed",
    )
    assert tx.id in flagged_ids(stub, admin, "confirmed_fraud")
    assert tx.id not in flagged_ids(stub, admin, "pending")

    reversal = stub.ReverseTransaction(
        pb.ReverseTransactionRequest(
            transaction_id=tx.id, reason="confirmed fraud", idempotency_key="rev-1"
        ),
        metadata=admin,
    )
    assert reversal.transaction.type == "reversal"
    assert reversal.transaction.reverses_transaction_id == tx.id
    assert reversal.transaction.note == "confirmed fraud"
    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth).balance == "0.00"
    again = stub.ReverseTransaction(
        pb.ReverseTransactionRequest(
            transaction_id=tx.id, reason="confirmed fraud", idempotency_key="rev-1"
        ),
        metadata=admin,
    )
    assert again.replayed and again.transaction.id == reversal.transaction.id
    expect_error(
        lambda: stub.ReverseTransaction(
            pb.ReverseTransactionRequest(transaction_id=tx.id, reason="again"), metadata=admin
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "already_reversed",
    )
    original = stub.GetTransaction(pb.GetTransactionRequest(transaction_id=tx.id), metadata=auth)
    assert original.reversed_by_transaction_id == reversal.transaction.id
    assert user
    assert verify_ledger(wallet.store) == []


def test_reversal_never_overdraws(stub: Stub, wallet: RunningWallet) -> None:
    admin = admin_auth(stub)
    _, payer = new_user(stub)
    payee, payee_auth = new_user(stub)
    stub.Deposit(pb.DepositRequest(amount="100.00", currency="USD"), metadata=payer)
    tx = stub.Transfer(
        pb.TransferRequest(to_username=payee, amount="100.00", currency="USD"), metadata=payer
    ).transaction
    stub.Withdraw(pb.WithdrawRequest(amount="60.00", currency="USD"), metadata=payee_auth)
    expect_error(
        lambda: stub.ReverseTransaction(
            pb.ReverseTransactionRequest(transaction_id=tx.id, reason="dispute"), metadata=admin
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )
    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=payee_auth).balance == (
        "40.00"
    )
    assert verify_ledger(wallet.store) == []


def test_admin_soft_deletes_a_transaction(stub: Stub, wallet: RunningWallet) -> None:
    admin = admin_auth(stub)
    user, auth = new_user(stub)
    tx = stub.Deposit(pb.DepositRequest(amount="7.00", currency="USD"), metadata=auth).transaction
    deleted = stub.DeleteTransaction(
        pb.DeleteTransactionRequest(transaction_id=tx.id), metadata=admin
    )
    assert deleted.deleted
    mine = stub.ListTransactions(pb.ListTransactionsRequest(), metadata=auth)
    assert tx.id not in {t.id for t in mine.transactions}
    expect_error(
        lambda: stub.GetTransaction(pb.GetTransactionRequest(transaction_id=tx.id), metadata=auth),
        grpc.StatusCode.NOT_FOUND,
        "transaction_not_found",
    )
    admin_view = stub.ListTransactions(
        pb.ListTransactionsRequest(username=user, include_deleted=True), metadata=admin
    )
    assert tx.id in {t.id for t in admin_view.transactions}
    # Deletion never moves money.
    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth).balance == "7.00"
    assert verify_ledger(wallet.store) == []


# -- fraud service variants: each gets its own wallet on a fresh database, on both stores -----

CALL_TIMEOUT = 30.0  # a hang guard only, never a measure of speed


@pytest.fixture
def slow_fraud() -> Iterator[tuple[str, HeldFraud]]:
    """Answers only when released (at teardown): always later than any deadline."""
    with held_fraud_server(CALL_TIMEOUT) as served:
        yield served


def closed_port() -> str:
    return free_address()  # nothing listens there: fraud is down


def test_block_rule_rejects_and_moves_nothing(make_wallet: object, blocking_fraud: str) -> None:
    running, stub = make_wallet(blocking_fraud)  # type: ignore[operator]
    _, auth = new_user(stub)
    stub.Deposit(pb.DepositRequest(amount="100.00", currency="USD"), metadata=auth)
    entries_before = count_rows(running, ledger_entries)
    error = expect_error(
        lambda: stub.Deposit(
            pb.DepositRequest(amount="20000.00", currency="USD", idempotency_key="big"),
            metadata=auth,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "transaction_blocked",
    )
    assert "nothing was moved" in (error.details() or "")  # type: ignore[attr-defined]
    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth).balance == "100.00"
    assert count_rows(running, ledger_entries) == entries_before
    history = stub.ListTransactions(pb.ListTransactionsRequest(), metadata=auth).transactions
    assert history[0].status == "rejected"
    assert seen_by_admin(stub, history[0].id).fraud_decision == "BLOCK"
    # A retry with the same key gets the same answer and still moves nothing.
    expect_error(
        lambda: stub.Deposit(
            pb.DepositRequest(amount="20000.00", currency="USD", idempotency_key="big"),
            metadata=auth,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "transaction_blocked",
    )
    assert count_rows(running, transactions) == 2
    assert verify_ledger(running.store) == []


def test_fraud_down_fail_open_completes_and_flags_unscored(make_wallet: object) -> None:
    running, stub = make_wallet(closed_port(), FRAUD_FAIL_MODE="open")  # type: ignore[operator]
    _, auth = new_user(stub)
    reply = stub.Deposit(pb.DepositRequest(amount="5.00", currency="USD"), metadata=auth)
    assert reply.transaction.status == "completed" and reply.transaction.flagged
    seen = seen_by_admin(stub, reply.transaction.id)
    assert seen.fraud_decision == "UNSCORED"
    assert [r.rule_id for r in seen.fraud_reasons] == ["unscored"]
    assert reply.transaction.id in flagged_ids(stub, admin_auth(stub), "pending")
    assert verify_ledger(running.store) == []


def test_fraud_down_fail_closed_refuses_and_moves_nothing(make_wallet: object) -> None:
    running, stub = make_wallet(closed_port(), FRAUD_FAIL_MODE="closed")  # type: ignore[operator]
    _, auth = new_user(stub)
    expect_error(
        lambda: stub.Deposit(pb.DepositRequest(amount="5.00", currency="USD"), metadata=auth),
        grpc.StatusCode.UNAVAILABLE,
        "fraud_unavailable",
    )
    assert count_rows(running, transactions) == 0
    assert count_rows(running, ledger_entries) == 0


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_slow_fraud_is_treated_as_down(
    make_wallet: object, slow_fraud: tuple[str, HeldFraud], mode: str
) -> None:
    """A fraud service that never answers in time: the deadline (200 ms) decides, so the
    call returns with the fail mode's outcome; the slow verdict (ALLOW) is never used."""
    addr, servicer = slow_fraud
    running, stub = make_wallet(
        addr,
        FRAUD_FAIL_MODE=mode,  # type: ignore[operator]
        FRAUD_TIMEOUT_MS="200",
    )
    _, auth = new_user(stub)
    deposit = pb.DepositRequest(amount="5.00", currency="USD")
    if mode == "open":
        reply = stub.Deposit(deposit, metadata=auth, timeout=CALL_TIMEOUT)
        assert reply.transaction.status == "completed" and reply.transaction.flagged
        assert seen_by_admin(stub, reply.transaction.id).fraud_decision == "UNSCORED"
    else:
        expect_error(
            lambda: stub.Deposit(deposit, metadata=auth, timeout=CALL_TIMEOUT),
            grpc.StatusCode.UNAVAILABLE,
            "fraud_unavailable",
        )
        assert count_rows(running, transactions) == 0
    # It was asked (so the outcome came from the deadline, not a refused connection), and
    # it has still not answered: the wallet returned without waiting for it.
    assert (servicer.calls, servicer.answered) == (1, 0)


def wallet_health(addr: str, service: str) -> int:
    with grpc.insecure_channel(addr) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
    return int(reply.status)


def wait_for_health(addr: str, service: str, expected: int) -> None:
    deadline = time.monotonic() + 10
    while wallet_health(addr, service) != expected:
        assert time.monotonic() < deadline, f"{service} never became {expected}"
        time.sleep(0.1)


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_wallet_health_reflects_whether_it_can_reach_fraud(make_wallet: object, mode: str) -> None:
    fraud_server = create_fraud_server(FraudSettings.from_env({"FRAUD_ADDR": "127.0.0.1:0"}))
    fraud_server.start()
    running, _ = make_wallet(f"127.0.0.1:{fraud_server.port}", FRAUD_FAIL_MODE=mode)  # type: ignore[operator]
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    wait_for_health(running.addr, "fraud.v1.FraudService", serving)
    assert wallet_health(running.addr, "wallet.v1.WalletService") == serving
    fraud_server.stop(0)
    wait_for_health(running.addr, "fraud.v1.FraudService", not_serving)
    # Closed mode cannot move money without fraud, so the wallet itself is not ready then;
    # open mode still serves (and flags movements as unscored).
    expected = not_serving if mode == "closed" else serving
    assert wallet_health(running.addr, "wallet.v1.WalletService") == expected
    assert wallet_health(running.addr, "") == serving  # the process itself is alive
