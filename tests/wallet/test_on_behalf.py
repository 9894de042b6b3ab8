"""Services acting on behalf of a user (the ...For RPCs) over real gRPC on both stores:
the movement is the user's own (scored, frozen users refused) and names the service;
keys are scoped to the service; a disabled account's token stops at once."""

from __future__ import annotations

import uuid

import grpc
from sqlalchemy import select
from wallet.v1 import wallet_pb2 as pb

from tests.support import (
    Account,
    Metadata,
    RunningWallet,
    ServiceClient,
    Stub,
    bearer,
    create_service_account,
    deposit,
    expect_error,
    login,
    register,
    service_auth,
)
from wallet_service.schema import transactions


def someone(stub: Stub) -> Account:
    name = register(stub)
    token = login(stub, name)
    return Account(name, "", bearer(token), token)


def balance(stub: Stub, who: Account) -> str:
    return stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=who.metadata).balance


def deposit_for(
    stub: Stub, auth: Metadata, username: str, amount: str, key: str | None = None
) -> pb.MovementResponse:
    request = pb.DepositForRequest(
        username=username, amount=amount, currency="USD", idempotency_key=key or uuid.uuid4().hex
    )
    return stub.DepositFor(request, metadata=auth)


def _payroll(stub: Stub, admin: Account) -> tuple[ServiceClient, Metadata]:
    """A new service account allowed to deposit, and its bearer token."""
    payroll = create_service_account(stub, admin.metadata, ["deposits:write"])
    return payroll, service_auth(stub, payroll)


def test_a_service_with_deposits_write_credits_a_user_and_is_named(
    stub: Stub, admin: Account, wallet: RunningWallet
) -> None:
    payroll = create_service_account(stub, admin.metadata, ["deposits:write"])
    user = someone(stub)
    reply = deposit_for(stub, service_auth(stub, payroll), user.username.upper(), "120.50")
    assert (reply.balance, reply.transaction.to_user) == ("120.50", user.username)
    assert reply.transaction.initiated_by_service == payroll.client_id
    assert balance(stub, user) == "120.50"
    # The user sees it as their own deposit, naming the service.
    listed = stub.ListTransactions(pb.ListTransactionsRequest(), metadata=user.metadata)
    assert [(t.id, t.initiated_by_service) for t in listed.transactions] == [
        (reply.transaction.id, payroll.client_id)
    ]
    with wallet.store.engine.connect() as conn:
        row = conn.execute(
            select(transactions).where(transactions.c.id == reply.transaction.id)
        ).one()
    assert row.initiated_by_service == payroll.client_id


def test_without_the_scope_the_service_is_refused_and_nothing_moves(
    stub: Stub, admin: Account
) -> None:
    reader = create_service_account(stub, admin.metadata, ["balances:read"])
    auth = service_auth(stub, reader)
    user = someone(stub)
    deposit(stub, user, "10.00")
    expect_error(
        lambda: deposit_for(stub, auth, user.username, "5.00"),
        grpc.StatusCode.PERMISSION_DENIED,
        "insufficient_scope",
    )
    for call in (
        lambda: stub.WithdrawFor(
            pb.WithdrawForRequest(username=user.username, amount="1", currency="USD"),
            metadata=auth,
        ),
        lambda: stub.TransferFor(
            pb.TransferForRequest(
                username=user.username, to_username=admin.username, amount="1", currency="USD"
            ),
            metadata=auth,
        ),
        lambda: stub.ListTransactionsFor(
            pb.ListTransactionsForRequest(username=user.username), metadata=auth
        ),
    ):
        expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope")
    assert balance(stub, user) == "10.00"
    # The scope it has works: the refusals above were about scope.
    seen = stub.GetBalanceFor(pb.GetBalanceForRequest(username=user.username), metadata=auth)
    assert (seen.username, seen.balance) == (user.username, "10.00")


def test_a_user_token_can_never_call_the_for_methods(stub: Stub, admin: Account) -> None:
    user = someone(stub)
    for auth in (user.metadata, admin.metadata):
        expect_error(
            lambda a=auth: deposit_for(stub, a, user.username, "5.00"),  # type: ignore[misc]
            grpc.StatusCode.PERMISSION_DENIED,
            "service_token_required",
        )
    assert balance(stub, user) == "0.00"


def test_a_retry_replays_and_keys_are_scoped_to_the_service(stub: Stub, admin: Account) -> None:
    one = create_service_account(stub, admin.metadata, ["deposits:write"])
    two = create_service_account(stub, admin.metadata, ["deposits:write"])
    user = someone(stub)
    first = deposit_for(stub, service_auth(stub, one), user.username, "7.00", key="pay-1")
    again = deposit_for(stub, service_auth(stub, one), user.username, "7.00", key="pay-1")
    assert again.transaction.id == first.transaction.id
    expect_error(
        lambda: deposit_for(stub, service_auth(stub, one), user.username, "8.00", key="pay-1"),
        grpc.StatusCode.ALREADY_EXISTS,
        "idempotency_key_reused",
    )
    other = deposit_for(stub, service_auth(stub, two), user.username, "7.00", key="pay-1")
    own = stub.Deposit(
        pb.DepositRequest(amount="7.00", currency="USD", idempotency_key="pay-1"),
        metadata=user.metadata,
    )
    assert len({first.transaction.id, other.transaction.id, own.transaction.id}) == 3
    assert balance(stub, user) == "21.00"


def test_transfer_for_moves_the_named_users_money(stub: Stub, admin: Account) -> None:
    payouts = create_service_account(stub, admin.metadata, ["transfers:write", "transactions:read"])
    auth = service_auth(stub, payouts)
    payer, payee = someone(stub), someone(stub)
    deposit(stub, payer, "50.00")
    reply = stub.TransferFor(
        pb.TransferForRequest(
            username=payer.username,
            to_username=payee.username,
            amount="20.00",
            currency="USD",
            idempotency_key="t-1",
        ),
        metadata=auth,
    )
    assert (reply.balance, reply.transaction.initiated_by_service) == ("30.00", payouts.client_id)
    assert (balance(stub, payer), balance(stub, payee)) == ("30.00", "20.00")
    listed = stub.ListTransactionsFor(
        pb.ListTransactionsForRequest(username=payee.username), metadata=auth
    )
    assert [t.id for t in listed.transactions] == [reply.transaction.id]
    assert not listed.transactions[0].fraud_decision  # the user's view: no fraud fields
    expect_error(
        lambda: stub.TransferFor(
            pb.TransferForRequest(
                username=payer.username, to_username=payee.username, amount="99", currency="USD"
            ),
            metadata=auth,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )


def test_frozen_users_and_fraud_rules_apply_as_for_the_user(stub: Stub, admin: Account) -> None:
    _, auth = _payroll(stub, admin)
    user = someone(stub)
    large = deposit_for(stub, auth, user.username, "20000.00")
    assert large.transaction.flagged  # scored: over the review threshold
    stub.FreezeUser(
        pb.FreezeUserRequest(username=user.username, reason="x"), metadata=admin.metadata
    )
    expect_error(
        lambda: deposit_for(stub, auth, user.username, "1.00"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "account_frozen",
    )
    expect_error(
        lambda: deposit_for(stub, auth, "no_such_user_here", "1.00"),
        grpc.StatusCode.NOT_FOUND,
        "user_not_found",
    )


def test_a_disabled_accounts_token_stops_moving_money_at_once(stub: Stub, admin: Account) -> None:
    payroll, auth = _payroll(stub, admin)
    user = someone(stub)
    deposit_for(stub, auth, user.username, "3.00")
    stub.DisableServiceAccount(
        pb.DisableServiceAccountRequest(id=payroll.client_id), metadata=admin.metadata
    )
    expect_error(
        lambda: deposit_for(stub, auth, user.username, "3.00"),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_revoked",
    )
    assert balance(stub, user) == "3.00"


def test_acting_for_an_admin_gives_a_service_no_admin_view(stub: Stub, admin: Account) -> None:
    """The admin's own deposit is flagged (10,000): the admin sees its fraud fields, a
    service reading the admin's history on their behalf does not."""
    big = stub.Deposit(
        pb.DepositRequest(amount="10000.00", currency="USD"), metadata=admin.metadata
    )
    assert big.transaction.fraud_reasons  # the admin's own view
    reader = create_service_account(stub, admin.metadata, ["transactions:read"])
    listed = stub.ListTransactionsFor(
        pb.ListTransactionsForRequest(username=admin.username, limit=200),
        metadata=service_auth(stub, reader),
    )
    [seen] = [t for t in listed.transactions if t.id == big.transaction.id]
    assert seen.flagged  # the parties' view keeps the flag ...
    assert not seen.fraud_reasons and not seen.fraud_decision  # ... and nothing more
