"""CreateTransfers over gRPC, on both stores: INDEPENDENT and ATOMIC batches, per-item
idempotency, the call's limits, and scoring equal to the same transfers in sequence."""

from __future__ import annotations

import uuid

import grpc
import pytest
from wallet.v1 import wallet_pb2 as pb

from tests.support import (
    STRUCTURING,
    VELOCITY,
    RunningWallet,
    Scenario,
    Stub,
    bearer,
    decode_rpc_error,
    error_reason,
    login,
    new_user,
)
from wallet_service.ledger import verify_ledger

Auth = tuple[tuple[str, str], ...]
TIMEOUT = 60.0  # a hang guard only


def funded(stub: Stub, amount: str) -> tuple[str, Auth]:
    name, auth = new_user(stub)
    stub.Deposit(pb.DepositRequest(amount=amount, currency="USD"), metadata=auth)
    return name, auth


def usd(stub: Stub, auth: Auth) -> str:
    return stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth).balance


def item(to: str, amount: str, key: str | None = None) -> pb.TransferItem:
    return pb.TransferItem(
        to_username=to, amount=amount, currency="USD", idempotency_key=key or uuid.uuid4().hex
    )


def send(
    stub: Stub, auth: Auth, items: list[pb.TransferItem], mode: int = pb.INDEPENDENT
) -> pb.CreateTransfersResponse:
    request = pb.CreateTransfersRequest(mode=mode, items=items)  # type: ignore[arg-type]
    return stub.CreateTransfers(request, metadata=auth, timeout=TIMEOUT)


def codes(reply: pb.CreateTransfersResponse) -> list[str]:
    return [r.error_code or "ok" for r in reply.results]


def item_index(error: grpc.RpcError) -> str:
    return decode_rpc_error(error).metadata.get("item_index", "")


def test_independent_items_fail_alone(stub: Stub, wallet: RunningWallet) -> None:
    _, auth = funded(stub, "10.00")
    bob, bob_auth = new_user(stub)
    used = uuid.uuid4().hex
    stub.Deposit(
        pb.DepositRequest(amount="1.00", currency="USD", idempotency_key=used), metadata=auth
    )
    reply = send(
        stub,
        auth,
        [
            item(bob, "4.00"),
            item("nobody_" + uuid.uuid4().hex[:8], "1.00"),
            item(bob, "5.00"),
            item(bob, "3.00"),  # 11.00 - 9.00 leaves 2.00: insufficient
            item(bob, "1.00", key=used),  # the key of the deposit above
            item(bob, "2.00"),
        ],
    )
    assert codes(reply) == [
        "ok",
        "recipient_not_found",
        "ok",
        "insufficient_funds",
        "idempotency_key_reused",
        "ok",
    ]
    assert [r.error_status for r in reply.results][1:5] == [
        "NOT_FOUND",
        "",
        "FAILED_PRECONDITION",
        "ALREADY_EXISTS",
    ]
    assert (reply.succeeded, reply.failed) == (3, 3)
    assert reply.results[5].movement.balance == "0.00"
    assert usd(stub, auth) == "0.00"
    assert usd(stub, bob_auth) == "11.00"
    assert verify_ledger(wallet.store) == []


def test_atomic_moves_all_or_nothing_and_names_the_first_failure(
    stub: Stub, wallet: RunningWallet
) -> None:
    _, auth = funded(stub, "10.00")
    bob, bob_auth = new_user(stub)
    keys = [uuid.uuid4().hex for _ in range(4)]
    failing = [item(bob, "4.00", keys[0]), item(bob, "5.00", keys[1])]
    failing += [item(bob, "3.00", keys[2]), item(bob, "0.50", keys[3])]
    with pytest.raises(grpc.RpcError) as refused:
        send(stub, auth, failing, pb.ATOMIC)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused.value) == "insufficient_funds"
    assert item_index(refused.value) == "2"
    assert "items[2]" in (refused.value.details() or "")
    assert usd(stub, auth) == "10.00" and usd(stub, bob_auth) == "0.00"

    with pytest.raises(grpc.RpcError) as unknown:
        send(
            stub,
            auth,
            [item(bob, "1.00"), item("nobody_" + uuid.uuid4().hex[:8], "1.00")],
            pb.ATOMIC,
        )
    assert error_reason(unknown.value) == "recipient_not_found"
    assert item_index(unknown.value) == "1"

    # The same keys, now affordable: nothing was recorded under them, so all commit.
    fits = [item(bob, "4.00", keys[0]), item(bob, "5.00", keys[1]), item(bob, "1.00", keys[2])]
    reply = send(stub, auth, fits, pb.ATOMIC)
    assert codes(reply) == ["ok"] * 3 and not any(r.movement.replayed for r in reply.results)
    assert usd(stub, auth) == "0.00" and usd(stub, bob_auth) == "10.00"
    assert verify_ledger(wallet.store) == []


def test_a_retried_batch_replays_each_item(stub: Stub, wallet: RunningWallet) -> None:
    _, auth = funded(stub, "5.00")
    bob, bob_auth = new_user(stub)
    items = [item(bob, "1.00"), item("nobody_" + uuid.uuid4().hex[:8], "1.00"), item(bob, "2.00")]
    first = send(stub, auth, items)
    again = send(stub, auth, items)
    assert codes(first) == codes(again) == ["ok", "recipient_not_found", "ok"]
    assert [r.transaction_id for r in again.results] == [r.transaction_id for r in first.results]
    assert [r.movement.replayed for r in again.results] == [True, False, True]
    assert [r.movement.replayed for r in first.results] == [False, False, False]
    assert usd(stub, auth) == "2.00" and usd(stub, bob_auth) == "3.00"

    atomic = [item(bob, "1.00"), item(bob, "1.00")]
    first_atomic = send(stub, auth, atomic, pb.ATOMIC)
    assert [r.movement.replayed for r in send(stub, auth, atomic, pb.ATOMIC).results] == [True] * 2
    assert first_atomic.succeeded == 2
    assert usd(stub, auth) == "0.00"
    assert verify_ledger(wallet.store) == []


@pytest.mark.parametrize(
    ("items", "mode", "reason"),
    [
        (0, pb.INDEPENDENT, "empty_batch"),
        (1001, pb.INDEPENDENT, "batch_too_large"),
        (1001, pb.ATOMIC, "batch_too_large"),
        (-1, pb.INDEPENDENT, "duplicate_idempotency_key"),
        (2, pb.BATCH_MODE_UNSPECIFIED, "invalid_batch_mode"),
    ],
    ids=["empty", "1001", "1001-atomic", "duplicate-keys", "no-mode"],
)
def test_bad_batches_are_refused_before_anything_moves(
    stub: Stub, wallet: RunningWallet, items: int, mode: int, reason: str
) -> None:
    _, auth = funded(stub, "20.00")
    bob, bob_auth = new_user(stub)
    batch = [item(bob, "0.01") for _ in range(max(items, 0))]
    if items == -1:  # the third repeats the first's key
        batch = [item(bob, "1.00"), item(bob, "1.00")]
        batch.append(item(bob, "1.00", key=batch[0].idempotency_key))
    with pytest.raises(grpc.RpcError) as refused:
        send(stub, auth, batch, mode)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(refused.value) == reason
    assert usd(stub, auth) == "20.00" and usd(stub, bob_auth) == "0.00"
    assert verify_ledger(wallet.store) == []


def test_a_batch_of_1000_commits(stub: Stub, wallet: RunningWallet) -> None:
    _, auth = funded(stub, "10.00")
    bob, bob_auth = new_user(stub)
    reply = send(stub, auth, [item(bob, "0.01") for _ in range(1000)])
    assert reply.succeeded == 1000
    assert usd(stub, auth) == "0.00" and usd(stub, bob_auth) == "10.00"
    assert verify_ledger(wallet.store) == []


@pytest.mark.parametrize("scenario", [VELOCITY, STRUCTURING], ids=["velocity", "structuring"])
def test_a_batch_is_scored_as_the_same_transfers_in_sequence(
    stub: Stub, wallet: RunningWallet, admin_credentials: tuple[str, str], scenario: Scenario
) -> None:
    admin = bearer(login(stub, *admin_credentials))
    _, auth = funded(stub, scenario.funding)
    payee, _ = new_user(stub)
    one_by_one = [
        stub.Transfer(
            pb.TransferRequest(to_username=payee, amount=scenario.amount, currency="USD"),
            metadata=auth,
        ).transaction.id
        for _ in range(scenario.count)
    ]
    in_sequence = rules_of(stub, admin, one_by_one)
    assert sum(scenario.rule in rules for rules in in_sequence) == scenario.expected_hits
    _, auth = funded(stub, scenario.funding)
    reply = send(stub, auth, [item(payee, scenario.amount) for _ in range(scenario.count)])
    assert reply.succeeded == scenario.count
    assert rules_of(stub, admin, [r.transaction_id for r in reply.results]) == in_sequence
    assert verify_ledger(wallet.store) == []


def rules_of(stub: Stub, admin: Auth, tx_ids: list[str]) -> list[tuple[str, ...]]:
    """The rules each transaction tripped, in order (the verdict is shown to admins only)."""
    return [
        tuple(
            sorted(
                r.rule_id
                for r in stub.GetTransaction(
                    pb.GetTransactionRequest(transaction_id=tx_id), metadata=admin
                ).fraud_reasons
            )
        )
        for tx_id in tx_ids
    ]
