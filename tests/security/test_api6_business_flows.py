"""API6:2023 Unrestricted Access to Sensitive Business Flows: money flows that must hold
whatever happened since. A frozen account neither sends nor receives money (it still logs
in and reads), and a retry with a used idempotency key answers its original result before
any other lookup or check (recipient deleted, account frozen), for every money-moving call,
over gRPC and REST."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.support import (
    PASSWORD,
    Account,
    MakeUser,
    RunningWallet,
    Unchanged,
    deposit,
    error_reason,
    login,
    transfer,
)

Stub = wallet_pb2_grpc.WalletServiceStub


def _freeze(rest: httpx.Client, admin: Account, who: Account, reason: str = "chargebacks") -> Any:
    response = rest.post(
        f"/admin/users/{who.username}/freeze", json={"reason": reason}, headers=admin.auth_header
    )
    assert response.status_code == 200, response.text
    return response.json()["user"]


def _refused_frozen_grpc(call: Callable[[], Any]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(caught.value) == "account_frozen"


def _refused_frozen_rest(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "account_frozen"


def _money(who: Account, key: str | None = None) -> dict[str, str]:
    return {**who.auth_header, "Idempotency-Key": key or uuid.uuid4().hex}


# -- freeze ---------------------------------------------------------------------------------


def test_a_frozen_user_reads_but_neither_sends_nor_receives(
    stub: Stub,
    rest: httpx.Client,
    make_user: MakeUser,
    admin: Account,
    unchanged: Unchanged,
) -> None:
    alice, bob = make_user(), make_user()
    deposit(stub, alice, "50.00")
    deposit(stub, bob, "50.00")
    frozen = _freeze(rest, admin, alice, reason="card reported stolen")
    assert frozen["frozen"] is True and frozen["frozen_reason"] == "card reported stolen"
    assert frozen["frozen_by"] == admin.user_id and frozen["frozen_at"]

    with unchanged():
        for call in (
            lambda: deposit(stub, alice, "1.00"),
            lambda: stub.Withdraw(
                wallet_pb2.WithdrawRequest(amount="1.00", currency="USD", idempotency_key="fw"),
                metadata=alice.metadata,
            ),
            lambda: transfer(stub, alice, bob, "1.00"),
            lambda: transfer(stub, bob, alice, "1.00"),  # to a frozen recipient
        ):
            _refused_frozen_grpc(call)
        body = {"amount": "1.00", "currency": "USD"}
        _refused_frozen_rest(rest.post("/deposit", json=body, headers=_money(alice)))
        _refused_frozen_rest(rest.post("/withdraw", json=body, headers=_money(alice)))
        to_bob = {**body, "to_username": bob.username}
        _refused_frozen_rest(rest.post("/transfer", json=to_bob, headers=_money(alice)))
        to_alice = {**body, "to_username": alice.username}
        _refused_frozen_rest(rest.post("/transfer", json=to_alice, headers=_money(bob)))

    # Still logs in and reads its balance and history.
    token = login(stub, alice.username, PASSWORD)
    headers = {"Authorization": f"Bearer {token}"}
    assert rest.get("/balance", headers=headers).json()["balance"] == "50.00"
    assert len(rest.get("/transactions", headers=headers).json()["transactions"]) == 1

    thawed = rest.post(f"/admin/users/{alice.username}/unfreeze", headers=admin.auth_header)
    assert thawed.status_code == 200 and thawed.json()["user"]["frozen"] is False
    assert transfer(stub, alice, bob, "1.00").balance == "49.00"


def test_freezing_needs_a_reason_and_an_existing_user(
    stub: Stub, rest: httpx.Client, make_user: MakeUser, admin: Account, unchanged: Unchanged
) -> None:
    alice = make_user()
    with unchanged():
        with pytest.raises(grpc.RpcError) as caught:
            stub.FreezeUser(
                wallet_pb2.FreezeUserRequest(username=alice.username, reason="  "),
                metadata=admin.metadata,
            )
        assert error_reason(caught.value) == "reason_required"
        missing = rest.post(
            f"/admin/users/{alice.username}/freeze", json={}, headers=admin.auth_header
        )
        assert missing.status_code == 400, missing.text
        nobody = rest.post(
            "/admin/users/no_such_user_x/freeze", json={"reason": "x"}, headers=admin.auth_header
        )
        assert nobody.status_code == 404


def test_confirming_fraud_can_freeze_the_sender_in_the_same_call(
    stub: Stub,
    rest: httpx.Client,
    make_user: MakeUser,
    admin: Account,
    wallet: RunningWallet,
) -> None:
    mule, victim = make_user(), make_user()
    deposit(stub, mule, "30000.00")
    flagged = transfer(stub, mule, victim, "12000.00").transaction
    assert flagged.flagged
    refused = rest.post(
        f"/admin/transactions/{flagged.id}/review",
        json={"resolution": "cleared", "freeze": True},
        headers=admin.auth_header,
    )
    assert refused.status_code == 400, refused.text
    response = rest.post(
        f"/admin/transactions/{flagged.id}/review",
        json={"resolution": "confirmed_fraud", "note": "mule account", "freeze": True},
        headers=admin.auth_header,
    )
    assert response.status_code == 200, response.text
    frozen = wallet.store.get_user(mule.user_id)
    assert frozen is not None and frozen.is_frozen
    assert frozen.frozen_by == admin.user_id and frozen.frozen_reason == "mule account"
    _refused_frozen_grpc(lambda: transfer(stub, mule, victim, "1.00"))
    # The admin's reversal still claws the money back from... and returns it to the frozen mule.
    reversed_ = stub.ReverseTransaction(
        wallet_pb2.ReverseTransactionRequest(
            transaction_id=flagged.id, reason="fraud", idempotency_key=uuid.uuid4().hex
        ),
        metadata=admin.metadata,
    )
    assert reversed_.balance == "30000.00"


# -- a used key answers first (issue 10, defect 5) --------------------------------------------


def test_a_transfer_replays_after_its_recipient_is_deleted(
    stub: Stub, rest: httpx.Client, make_user: MakeUser, admin: Account
) -> None:
    alice, bob = make_user(), make_user()
    deposit(stub, alice, "100.00")
    request = wallet_pb2.TransferRequest(
        to_username=bob.username, amount="10.00", currency="USD", idempotency_key="t-k"
    )
    first = stub.Transfer(request, metadata=alice.metadata)
    body = {"to_username": bob.username, "amount": "10.00", "currency": "USD"}
    first_rest = rest.post("/transfer", json=body, headers=_money(alice, "t-rest"))
    assert first_rest.status_code == 201, first_rest.text
    stub.DeleteUser(wallet_pb2.DeleteUserRequest(username=bob.username), metadata=admin.metadata)

    again = stub.Transfer(request, metadata=alice.metadata)
    assert again.replayed and again.transaction.id == first.transaction.id
    assert again.balance == first.balance
    again_rest = rest.post("/transfer", json=body, headers=_money(alice, "t-rest"))
    assert again_rest.status_code == 201, again_rest.text
    assert again_rest.json()["transaction_id"] == first_rest.json()["transaction_id"]
    assert again_rest.json()["replayed"] is True
    # A new key is a new request: now the recipient is gone.
    fresh = rest.post("/transfer", json=body, headers=_money(alice))
    assert fresh.status_code == 404
    # The same key with another request is still a reuse.
    other = rest.post(
        "/transfer", json={**body, "amount": "11.00"}, headers=_money(alice, "t-rest")
    )
    assert other.status_code == 409


@pytest.mark.parametrize("call", ["deposit", "withdraw"])
def test_deposit_and_withdraw_replay_after_the_account_is_frozen(
    call: str, stub: Stub, rest: httpx.Client, make_user: MakeUser, admin: Account
) -> None:
    alice = make_user()
    deposit(stub, alice, "100.00")
    rpc: Callable[..., wallet_pb2.MovementResponse] = (
        stub.Deposit if call == "deposit" else stub.Withdraw
    )
    message = wallet_pb2.DepositRequest if call == "deposit" else wallet_pb2.WithdrawRequest
    request = message(amount="10.00", currency="USD", idempotency_key=f"{call}-k")
    first = rpc(request, metadata=alice.metadata)
    body = {"amount": "10.00", "currency": "USD"}
    first_rest = rest.post(f"/{call}", json=body, headers=_money(alice, f"{call}-rest"))
    assert first_rest.status_code == 201, first_rest.text
    _freeze(rest, admin, alice)

    again = rpc(request, metadata=alice.metadata)
    assert again.replayed and again.transaction.id == first.transaction.id
    again_rest = rest.post(f"/{call}", json=body, headers=_money(alice, f"{call}-rest"))
    assert again_rest.status_code == 201, again_rest.text
    assert again_rest.json()["transaction_id"] == first_rest.json()["transaction_id"]
    _refused_frozen_rest(rest.post(f"/{call}", json=body, headers=_money(alice)))


def test_a_reversal_replays_after_its_parties_are_frozen_and_deleted(
    stub: Stub, rest: httpx.Client, make_user: MakeUser, admin: Account
) -> None:
    alice, bob = make_user(), make_user()
    deposit(stub, alice, "100.00")
    original = transfer(stub, alice, bob, "10.00").transaction
    request = wallet_pb2.ReverseTransactionRequest(
        transaction_id=original.id, reason="mistake", idempotency_key="rev-k"
    )
    first = stub.ReverseTransaction(request, metadata=admin.metadata)
    _freeze(rest, admin, alice)
    stub.DeleteUser(wallet_pb2.DeleteUserRequest(username=bob.username), metadata=admin.metadata)

    again = stub.ReverseTransaction(request, metadata=admin.metadata)
    assert again.replayed and again.transaction.id == first.transaction.id
    response = rest.post(
        f"/admin/transactions/{original.id}/reverse",
        json={"reason": "mistake"},
        headers=_money(admin, "rev-k"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["transaction_id"] == first.transaction.id
    assert response.json()["replayed"] is True
