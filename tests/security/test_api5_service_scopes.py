"""API5:2023 Broken Function Level Authorization, for internal callers: each ...For RPC
needs a service token carrying its own scope. A service holding every other scope, a
user's token and an admin's token are all refused, and nothing changes; a service token
cannot call the user or admin methods either."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.support import (
    Account,
    MakeUser,
    Metadata,
    Unchanged,
    create_service_account,
    deposit,
    error_reason,
    service_auth,
)
from wallet_service.service_accounts import SCOPES

Stub = wallet_pb2_grpc.WalletServiceStub
Call = Callable[[Metadata], Any]


def _calls(stub: Stub, victim: str, payee: str) -> dict[str, tuple[str, Call]]:
    """Each ...For RPC with the scope it needs and a valid request."""
    return {
        "DepositFor": (
            "deposits:write",
            lambda md: stub.DepositFor(
                pb.DepositForRequest(username=victim, amount="1", currency="USD"), metadata=md
            ),
        ),
        "WithdrawFor": (
            "withdrawals:write",
            lambda md: stub.WithdrawFor(
                pb.WithdrawForRequest(username=victim, amount="1", currency="USD"), metadata=md
            ),
        ),
        "TransferFor": (
            "transfers:write",
            lambda md: stub.TransferFor(
                pb.TransferForRequest(
                    username=victim, to_username=payee, amount="1", currency="USD"
                ),
                metadata=md,
            ),
        ),
        "GetBalanceFor": (
            "balances:read",
            lambda md: stub.GetBalanceFor(pb.GetBalanceForRequest(username=victim), metadata=md),
        ),
        "ListTransactionsFor": (
            "transactions:read",
            lambda md: stub.ListTransactionsFor(
                pb.ListTransactionsForRequest(username=victim), metadata=md
            ),
        ),
    }


@pytest.fixture
def calls(stub: Stub, make_user: MakeUser) -> dict[str, tuple[str, Call]]:
    victim, payee = make_user(), make_user()
    deposit(stub, victim, "10.00")
    return _calls(stub, victim.username, payee.username)


def test_each_for_method_needs_its_own_scope(
    stub: Stub, admin: Account, calls: dict[str, tuple[str, Call]], unchanged: Unchanged
) -> None:
    assert {scope for scope, _ in calls.values()} == SCOPES
    for name, (scope, call) in calls.items():
        others = create_service_account(stub, admin.metadata, sorted(SCOPES - {scope}))
        with unchanged(), pytest.raises(grpc.RpcError) as info:
            call(service_auth(stub, others))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
        assert error_reason(info.value) == "insufficient_scope", name
        # Control: the scope alone is enough.
        alone = create_service_account(stub, admin.metadata, [scope])
        call(service_auth(stub, alone))


def test_user_and_admin_tokens_can_never_call_for_methods(
    admin: Account,
    make_user: MakeUser,
    calls: dict[str, tuple[str, Call]],
    unchanged: Unchanged,
) -> None:
    for who in (make_user(), admin):
        for name, (_, call) in calls.items():
            with unchanged(), pytest.raises(grpc.RpcError) as info:
                call(who.metadata)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
            assert error_reason(info.value) == "service_token_required", name


def test_a_service_token_cannot_act_as_a_user_or_an_admin(
    stub: Stub, admin: Account, unchanged: Unchanged
) -> None:
    everything = service_auth(stub, create_service_account(stub, admin.metadata, sorted(SCOPES)))
    for call in (
        lambda: stub.Deposit(pb.DepositRequest(amount="1", currency="USD"), metadata=everything),
        lambda: stub.ListBalances(pb.ListBalancesRequest(), metadata=everything),
        lambda: stub.ListFlaggedTransactions(
            pb.ListFlaggedTransactionsRequest(), metadata=everything
        ),
        lambda: stub.CreateServiceAccount(
            pb.CreateServiceAccountRequest(name="escalate", scopes=sorted(SCOPES)),
            metadata=everything,
        ),
    ):
        with unchanged(), pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(info.value) == "user_token_required"
