"""The user journey over real gRPC, and each error mapped to its status and code.

Runs once per store (SQLite and PostgreSQL) through the `stub` fixture.
"""

from __future__ import annotations

import grpc
import pytest
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from common.limits import MAX_PAGE_SIZE
from tests.support import (
    PASSWORD,
    RunningWallet,
    bearer,
    count_rows,
    expect_error,
    login,
    new_user,
    register,
    unique_name,
)
from wallet_service.ledger import verify_ledger
from wallet_service.schema import ledger_entries, transactions

Stub = wallet_pb2_grpc.WalletServiceStub


def test_full_journey(stub: Stub, wallet: RunningWallet) -> None:
    alice = unique_name("alice")
    reply = stub.Register(pb.RegisterRequest(username=alice, password=PASSWORD))
    assert reply.user.username == alice and reply.user.role == "user"
    assert reply.user.created_at.endswith("Z")
    bob, bob_auth = new_user(stub)
    alice_auth = bearer(login(stub, alice))

    deposit = stub.Deposit(pb.DepositRequest(amount="100.50", currency="USD"), metadata=alice_auth)
    assert deposit.balance == "100.50" and deposit.transaction.status == "completed"
    assert deposit.transaction.type == "deposit" and deposit.transaction.to_user == alice

    transfer = stub.Transfer(
        pb.TransferRequest(to_username=bob, amount="40.25", currency="USD"), metadata=alice_auth
    )
    assert transfer.balance == "60.25"
    assert (transfer.transaction.from_user, transfer.transaction.to_user) == (alice, bob)

    withdrawal = stub.Withdraw(pb.WithdrawRequest(amount="0.25", currency="USD"), metadata=bob_auth)
    assert withdrawal.balance == "40.00"

    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=alice_auth).balance == (
        "60.25"
    )
    assert stub.GetBalance(pb.GetBalanceRequest(), metadata=bob_auth).balance == "40.00"
    stub.Deposit(pb.DepositRequest(amount="5", currency="JPY"), metadata=bob_auth)
    balances = stub.ListBalances(pb.ListBalancesRequest(), metadata=bob_auth)
    assert [(b.currency, b.balance) for b in balances.balances] == [("JPY", "5"), ("USD", "40.00")]

    history = stub.ListTransactions(pb.ListTransactionsRequest(), metadata=bob_auth)
    assert [t.type for t in history.transactions] == ["deposit", "withdrawal", "transfer"]
    assert history.next_cursor == ""
    fetched = stub.GetTransaction(
        pb.GetTransactionRequest(transaction_id=transfer.transaction.id), metadata=bob_auth
    )
    assert fetched.amount == "40.25" and fetched.from_user == alice
    assert verify_ledger(wallet.store) == []


def test_pagination_and_filters(stub: Stub) -> None:
    _, auth = new_user(stub)
    for amount in ("1.00", "2.00", "3.00", "4.00", "5.00"):
        stub.Deposit(pb.DepositRequest(amount=amount, currency="EUR"), metadata=auth)
    stub.Deposit(pb.DepositRequest(amount="9", currency="JPY"), metadata=auth)
    seen: list[str] = []
    cursor = ""
    while True:
        page = stub.ListTransactions(
            pb.ListTransactionsRequest(limit=2, cursor=cursor, currency="EUR"), metadata=auth
        )
        seen += [t.amount for t in page.transactions]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == ["5.00", "4.00", "3.00", "2.00", "1.00"]  # newest first, none twice
    only_jpy = stub.ListTransactions(pb.ListTransactionsRequest(currency="JPY"), metadata=auth)
    assert [t.amount for t in only_jpy.transactions] == ["9"]
    none = stub.ListTransactions(pb.ListTransactionsRequest(type="withdrawal"), metadata=auth)
    assert list(none.transactions) == []
    future = stub.ListTransactions(
        pb.ListTransactionsRequest(since="2999-01-01T00:00:00Z"), metadata=auth
    )
    assert list(future.transactions) == []


def test_idempotent_retry_moves_money_once(stub: Stub, wallet: RunningWallet) -> None:
    _, auth = new_user(stub)
    first = stub.Deposit(
        pb.DepositRequest(amount="10.00", currency="USD", idempotency_key="k-1"), metadata=auth
    )
    again = stub.Deposit(
        pb.DepositRequest(amount="10.00", currency="USD", idempotency_key="k-1"), metadata=auth
    )
    assert again.transaction.id == first.transaction.id
    assert again.replayed and not first.replayed
    assert again.balance == first.balance == "10.00"
    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth).balance == "10.00"
    expect_error(
        lambda: stub.Deposit(
            pb.DepositRequest(amount="11.00", currency="USD", idempotency_key="k-1"), metadata=auth
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "idempotency_key_reused",
    )
    # Keys are scoped to the caller: another user may use the same key.
    _, other = new_user(stub)
    fresh = stub.Deposit(
        pb.DepositRequest(amount="10.00", currency="USD", idempotency_key="k-1"), metadata=other
    )
    assert fresh.transaction.id != first.transaction.id and not fresh.replayed


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [
        ("0", "USD", "invalid_amount"),
        ("-1", "USD", "invalid_amount"),
        ("1.001", "USD", "invalid_amount"),
        ("NaN", "USD", "invalid_amount"),
        ("Infinity", "USD", "invalid_amount"),
        ("1e3", "USD", "invalid_amount"),
        ("abc", "USD", "invalid_amount"),
        ("10000000000", "USD", "amount_too_large"),
        ("1", "usd", "invalid_currency"),
        ("1", "XYZ", "unsupported_currency"),
        ("1.5", "JPY", "invalid_amount"),
    ],
)
def test_bad_amounts_are_invalid_argument_and_write_nothing(
    stub: Stub, wallet: RunningWallet, amount: str, currency: str, reason: str
) -> None:
    _, auth = new_user(stub)
    before = count_rows(wallet, transactions), count_rows(wallet, ledger_entries)
    expect_error(
        lambda: stub.Deposit(pb.DepositRequest(amount=amount, currency=currency), metadata=auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )
    assert (count_rows(wallet, transactions), count_rows(wallet, ledger_entries)) == before


def test_error_statuses(stub: Stub, wallet: RunningWallet) -> None:
    name, auth = new_user(stub)
    other, _ = new_user(stub)
    expect_error(
        lambda: stub.Register(pb.RegisterRequest(username=name, password=PASSWORD)),
        grpc.StatusCode.ALREADY_EXISTS,
        "username_taken",
    )
    expect_error(
        lambda: stub.Register(pb.RegisterRequest(username="x", password=PASSWORD)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_username",
    )
    expect_error(
        lambda: stub.Register(pb.RegisterRequest(username=unique_name(), password="short")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "weak_password",
    )
    expect_error(
        lambda: stub.Login(pb.LoginRequest(username=name, password="wrong-password")),
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid_credentials",
    )
    expect_error(
        lambda: stub.Withdraw(pb.WithdrawRequest(amount="1.00", currency="USD"), metadata=auth),
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )
    stub.Deposit(pb.DepositRequest(amount="5.00", currency="USD"), metadata=auth)
    expect_error(
        lambda: stub.Withdraw(pb.WithdrawRequest(amount="5.01", currency="USD"), metadata=auth),
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )
    expect_error(
        lambda: stub.Transfer(
            pb.TransferRequest(to_username=other, amount="1", currency="GBP"), metadata=auth
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )
    expect_error(
        lambda: stub.Transfer(
            pb.TransferRequest(to_username=name, amount="1", currency="USD"), metadata=auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "self_transfer",
    )
    expect_error(
        lambda: stub.Transfer(
            pb.TransferRequest(to_username="nobody_here", amount="1", currency="USD"), metadata=auth
        ),
        grpc.StatusCode.NOT_FOUND,
        "recipient_not_found",
    )
    expect_error(
        lambda: stub.GetTransaction(pb.GetTransactionRequest(transaction_id="nope"), metadata=auth),
        grpc.StatusCode.NOT_FOUND,
        "transaction_not_found",
    )
    expect_error(
        lambda: stub.ListTransactions(pb.ListTransactionsRequest(cursor="%%%"), metadata=auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_cursor",
    )
    expect_error(
        lambda: stub.ListTransactions(pb.ListTransactionsRequest(type="bogus"), metadata=auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_type",
    )
    expect_error(
        lambda: stub.Deposit(
            pb.DepositRequest(amount="1", currency="USD", idempotency_key="k" * 200), metadata=auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_idempotency_key",
    )
    expect_error(
        lambda: stub.DeleteAccount(pb.DeleteAccountRequest(), metadata=auth),
        grpc.StatusCode.FAILED_PRECONDITION,
        "balance_not_zero",
    )
    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth).balance == "5.00"
    assert verify_ledger(wallet.store) == []


def test_page_size_is_capped(stub: Stub) -> None:
    # More transactions than the cap, so a page could hold more than MAX_PAGE_SIZE.
    _, auth = new_user(stub)
    pending = [
        stub.Deposit.future(pb.DepositRequest(amount="1.00", currency="USD"), metadata=auth)
        for _ in range(MAX_PAGE_SIZE + 5)
    ]
    for call in pending:
        call.result(timeout=120)  # hang guard
    page = stub.ListTransactions(pb.ListTransactionsRequest(limit=1_000_000), metadata=auth)
    assert len(page.transactions) == MAX_PAGE_SIZE
    assert page.next_cursor
    rest = stub.ListTransactions(
        pb.ListTransactionsRequest(limit=1_000_000, cursor=page.next_cursor), metadata=auth
    )
    assert len(rest.transactions) == 5
    expect_error(
        lambda: stub.ListTransactions(pb.ListTransactionsRequest(limit=-1), metadata=auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_limit",
    )


def test_delete_own_account(stub: Stub) -> None:
    name, auth = new_user(stub)
    _, sender_auth = new_user(stub)
    stub.Deposit(pb.DepositRequest(amount="3.00", currency="USD"), metadata=auth)
    stub.Withdraw(pb.WithdrawRequest(amount="3.00", currency="USD"), metadata=auth)
    deleted = stub.DeleteAccount(pb.DeleteAccountRequest(), metadata=auth)
    assert deleted.deleted and deleted.username == name
    # The token of a deleted user stops working, the user cannot log in or receive money.
    expect_error(
        lambda: stub.GetBalance(pb.GetBalanceRequest(), metadata=auth),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_invalid",
    )
    expect_error(
        lambda: stub.Login(pb.LoginRequest(username=name, password=PASSWORD)),
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid_credentials",
    )
    stub.Deposit(pb.DepositRequest(amount="1.00", currency="USD"), metadata=sender_auth)
    expect_error(
        lambda: stub.Transfer(
            pb.TransferRequest(to_username=name, amount="1.00", currency="USD"),
            metadata=sender_auth,
        ),
        grpc.StatusCode.NOT_FOUND,
        "recipient_not_found",
    )
    # The name stays taken, so nobody can impersonate the deleted user.
    expect_error(lambda: register(stub, name), grpc.StatusCode.ALREADY_EXISTS, "username_taken")
