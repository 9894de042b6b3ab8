"""API1:2023 Broken Object Level Authorization: another user's transactions and accounts
are invisible, through gRPC and REST, and probing them changes nothing."""

from __future__ import annotations

import grpc
import httpx
import pytest
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.support import Account, MakeUser, Unchanged, deposit, error_code, error_reason, transfer


def _rpc_error(call: object, *args: object, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


def test_grpc_other_users_transaction_is_not_found(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, unchanged: Unchanged
) -> None:
    victim, attacker = make_user(), make_user()
    secret = deposit(stub, victim, "42.00").transaction.id
    # Positive control: the owner sees it.
    assert (
        stub.GetTransaction(
            wallet_pb2.GetTransactionRequest(transaction_id=secret), metadata=victim.metadata
        ).id
        == secret
    )
    with unchanged():
        error = _rpc_error(
            stub.GetTransaction,
            wallet_pb2.GetTransactionRequest(transaction_id=secret),
            metadata=attacker.metadata,
        )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error) == "transaction_not_found"
    assert secret not in (error.details() or "")
    # The same answer as for an id that does not exist: ids cannot be probed.
    missing = _rpc_error(
        stub.GetTransaction,
        wallet_pb2.GetTransactionRequest(transaction_id="0190f0f0-0000-7000-8000-000000000000"),
        metadata=attacker.metadata,
    )
    assert (missing.code(), missing.details()) == (error.code(), error.details())


def test_grpc_listing_shows_only_own_transactions(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser
) -> None:
    victim, attacker, third = make_user(), make_user(), make_user()
    deposit(stub, victim, "10.00")
    transfer(stub, victim, third, "1.00")
    deposit(stub, attacker, "5.00")
    listing = stub.ListTransactions(
        wallet_pb2.ListTransactionsRequest(limit=200), metadata=attacker.metadata
    )
    assert listing.transactions
    for tx in listing.transactions:
        assert attacker.username in (tx.from_user, tx.to_user)
        assert victim.username not in (tx.from_user, tx.to_user)


def test_grpc_listing_another_users_history_is_refused(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, unchanged: Unchanged
) -> None:
    victim, attacker = make_user(), make_user()
    deposit(stub, victim, "3.00")
    with unchanged():
        error = _rpc_error(
            stub.ListTransactions,
            wallet_pb2.ListTransactionsRequest(username=victim.username),
            metadata=attacker.metadata,
        )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error) == "admin_required"


def test_grpc_counterparty_sees_transfer_but_not_others(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser
) -> None:
    sender, receiver, outsider = make_user(), make_user(), make_user()
    deposit(stub, sender, "10.00")
    tx_id = transfer(stub, sender, receiver, "2.50").transaction.id
    seen = stub.GetTransaction(
        wallet_pb2.GetTransactionRequest(transaction_id=tx_id), metadata=receiver.metadata
    )
    assert (seen.from_user, seen.to_user) == (sender.username, receiver.username)
    error = _rpc_error(
        stub.GetTransaction,
        wallet_pb2.GetTransactionRequest(transaction_id=tx_id),
        metadata=outsider.metadata,
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_balance_and_movements_act_on_own_accounts_only(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, unchanged: Unchanged
) -> None:
    """There is no field naming a source account: a withdrawal over the attacker's own
    balance fails even though the victim holds the money."""
    victim, attacker = make_user(), make_user()
    deposit(stub, victim, "100.00")
    with unchanged():
        error = _rpc_error(
            stub.Withdraw,
            wallet_pb2.WithdrawRequest(amount="50.00", currency="USD", idempotency_key="bola-w"),
            metadata=attacker.metadata,
        )
    assert error_reason(error) == "insufficient_funds"
    balance = stub.GetBalance(
        wallet_pb2.GetBalanceRequest(currency="USD"), metadata=victim.metadata
    )
    assert balance.balance == "100.00"
    mine = stub.GetBalance(wallet_pb2.GetBalanceRequest(currency="USD"), metadata=attacker.metadata)
    assert (mine.username, mine.balance) == (attacker.username, "0.00")


def test_grpc_idempotency_keys_are_scoped_per_user(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser
) -> None:
    """Reusing another user's key neither replays their transaction nor blocks the caller."""
    victim, attacker = make_user(), make_user()
    key = "shared-key-123"
    original = stub.Deposit(
        wallet_pb2.DepositRequest(amount="7.00", currency="USD", idempotency_key=key),
        metadata=victim.metadata,
    )
    mine = stub.Deposit(
        wallet_pb2.DepositRequest(amount="7.00", currency="USD", idempotency_key=key),
        metadata=attacker.metadata,
    )
    assert not mine.replayed
    assert mine.transaction.id != original.transaction.id
    assert mine.transaction.to_user == attacker.username


def test_rest_other_users_transaction_is_404(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    rest: httpx.Client,
    unchanged: Unchanged,
) -> None:
    victim, attacker = make_user(), make_user()
    secret = deposit(stub, victim, "9.99").transaction.id
    assert rest.get(f"/transactions/{secret}", headers=victim.auth_header).status_code == 200
    with unchanged():
        response = rest.get(f"/transactions/{secret}", headers=attacker.auth_header)
    assert response.status_code == 404, response.text
    assert error_code(response) == "transaction_not_found"
    assert "9.99" not in response.text


def test_rest_other_users_history_is_403(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    rest: httpx.Client,
    unchanged: Unchanged,
) -> None:
    victim, attacker = make_user(), make_user()
    deposit(stub, victim, "1.00")
    with unchanged():
        response = rest.get(
            "/transactions", params={"username": victim.username}, headers=attacker.auth_header
        )
        hidden = rest.get(
            "/transactions", params={"include_deleted": "true"}, headers=attacker.auth_header
        )
    assert response.status_code == 403, response.text
    assert hidden.status_code == 403, hidden.text
    own = rest.get("/transactions", headers=attacker.auth_header).json()
    assert own["transactions"] == []


def test_deleted_transaction_is_hidden_from_its_owner(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    admin: Account,
    rest: httpx.Client,
) -> None:
    owner = make_user()
    tx_id = deposit(stub, owner, "4.00").transaction.id
    stub.DeleteTransaction(
        wallet_pb2.DeleteTransactionRequest(transaction_id=tx_id), metadata=admin.metadata
    )
    assert rest.get(f"/transactions/{tx_id}", headers=owner.auth_header).status_code == 404
    listed = rest.get("/transactions", headers=owner.auth_header).json()["transactions"]
    assert tx_id not in {t["tx_id"] for t in listed}
