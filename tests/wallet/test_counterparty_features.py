"""The to-counterparty features (count and sum of the sender's transfers to this
movement's counterparty over the last hour and day), computed by the real wallet on both
stores, for single transfers and for a batch (folded item by item), read back from the
features stored with each scored movement."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from wallet.v1 import wallet_pb2 as pb

from fraud_service.server import FraudServer
from tests.support import Metadata, Stub, new_user, start_fraud, to_counterparty


@pytest.fixture
def fraud() -> Iterator[FraudServer]:
    server = start_fraud()
    yield server
    server.stop(None)


def transfer(stub: Stub, auth: Metadata, to: str, amount: str) -> str:
    request = pb.TransferRequest(to_username=to, amount=amount, currency="USD")
    return str(stub.Transfer(request, metadata=auth).transaction.id)


def batch(stub: Stub, auth: Metadata, items: list[tuple[str, str]]) -> list[str]:
    request = pb.CreateTransfersRequest(
        mode=pb.ATOMIC,
        items=[
            pb.TransferItem(
                to_username=to, amount=amount, currency="USD", idempotency_key=uuid.uuid4().hex
            )
            for to, amount in items
        ],
    )
    reply = stub.CreateTransfers(request, metadata=auth, timeout=60)
    return [str(r.movement.transaction.id) for r in reply.results]


def test_transfers_to_two_counterparties_count_each_apart(
    make_wallet: Any, fraud: FraudServer
) -> None:
    wallet, stub = make_wallet(f"127.0.0.1:{fraud.port}")
    _, alice = new_user(stub)
    bob, _ = new_user(stub)
    carol, _ = new_user(stub)
    deposit = stub.Deposit(pb.DepositRequest(amount="1000.00", currency="USD"), metadata=alice)
    singles = [
        transfer(stub, alice, bob, "10.00"),
        transfer(stub, alice, carol, "20.00"),
        transfer(stub, alice, bob, "30.00"),
    ]
    batched = batch(stub, alice, [(carol, "5.00"), (bob, "7.00"), (carol, "9.00")])
    now = datetime.now(UTC)
    stored = wallet.store.scored_transactions(
        since=now - timedelta(hours=1), until=now + timedelta(minutes=1), limit=100
    )
    by_id = {s.transaction.id: s.features for s in stored}
    # Each one counts the earlier transfers to its own counterparty only; not itself.
    expected = [
        (0, 0, 0, 0),
        (0, 0, 0, 0),
        (1, 1_000, 1, 1_000),
        (1, 2_000, 1, 2_000),  # batch: carol had 20.00
        (2, 4_000, 2, 4_000),  # bob had 10.00 + 30.00; the batch's carol item is not his
        (2, 2_500, 2, 2_500),  # carol had 20.00, and 5.00 earlier in the batch
    ]
    assert [to_counterparty(by_id[i]) for i in singles + batched] == expected
    # A deposit has no counterparty; the sender's totals still count everything.
    assert to_counterparty(by_id[str(deposit.transaction.id)]) == (0, 0, 0, 0)
    assert by_id[batched[-1]].count_last_hour == 6
