"""wallet_client against the real wallet on both stores: a deposit whose reply is lost
(UNAVAILABLE after the wallet committed) is retried with the same key and moves money
once; money is Decimal; errors carry the ErrorInfo reason; the service token is refreshed
when the wallet calls it stale."""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from wallet.v1 import wallet_pb2 as pb

from tests.support import (
    Account,
    LoseReplies,
    RunningWallet,
    Stub,
    create_service_account,
    new_user,
)
from wallet_client import ServiceCredentials, WalletClient, WalletError


def credentials(stub: Stub, admin: Account, scopes: list[str]) -> ServiceCredentials:
    client = create_service_account(stub, admin.metadata, scopes)
    return ServiceCredentials(client.client_id, client.secret)


def test_a_deposit_retried_after_a_lost_reply_moves_money_once(
    stub: Stub, admin: Account, wallet: RunningWallet
) -> None:
    creds = credentials(stub, admin, ["deposits:write", "balances:read"])
    username, user = new_user(stub)
    lose = LoseReplies("DepositFor")
    sleeps: list[float] = []
    with grpc.intercept_channel(grpc.insecure_channel(wallet.addr), lose) as channel:
        client = WalletClient(channel, credentials=creds, sleep=sleeps.append)
        movement = client.deposit_for(username, Decimal("42.10"), "USD")
        assert (lose.calls, len(sleeps)) == (2, 1)  # processed, reply lost, retried once
        assert movement.replayed  # the second attempt got the first one's answer
        assert movement.balance == Decimal("42.10")
        assert client.balance_for(username) == Decimal("42.10")
    listed = stub.ListTransactions(pb.ListTransactionsRequest(), metadata=user)
    assert [t.id for t in listed.transactions] == [movement.transaction_id]


def test_errors_carry_the_reason_and_floats_are_refused(
    stub: Stub, admin: Account, wallet: RunningWallet
) -> None:
    creds = credentials(stub, admin, ["withdrawals:write"])
    username, _ = new_user(stub)
    with grpc.insecure_channel(wallet.addr) as channel:
        client = WalletClient(channel, credentials=creds)
        with pytest.raises(WalletError) as refused:
            client.withdraw_for(username, Decimal("1.00"), "USD")
        assert (refused.value.code, refused.value.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "insufficient_funds",
        )
        with pytest.raises(WalletError) as scoped:
            client.balance_for(username)
        assert scoped.value.reason == "insufficient_scope"
        with pytest.raises(TypeError):
            client.withdraw_for(username, 1.1, "USD")  # type: ignore[arg-type]


def test_the_service_token_is_refreshed_before_it_expires(
    stub: Stub, admin: Account, wallet: RunningWallet
) -> None:
    creds = credentials(stub, admin, ["balances:read"])
    username, _ = new_user(stub)
    now = [0.0]
    issued = LoseReplies("IssueServiceToken", count=0)  # only counts
    with grpc.intercept_channel(grpc.insecure_channel(wallet.addr), issued) as channel:
        client = WalletClient(channel, credentials=creds, clock=lambda: now[0])
        client.balance_for(username)
        client.balance_for(username)
        assert issued.calls == 1  # reused while valid
        now[0] += 3600.0  # past the token's lifetime by the client's clock
        client.balance_for(username)
        assert issued.calls == 2
