"""POST /transfers/batch through the gateway, on both stores: per-item results with the
statuses POST /transfer would answer, ATOMIC all-or-nothing, replay, and the call's limits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import RunningWallet, assert_error, unique_name
from wallet_service.ledger import verify_ledger

PASSWORD = "correct horse battery"


@pytest.fixture
def client(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=60) as http:
        yield http


def user(client: httpx.Client, deposit: str = "") -> tuple[str, dict[str, str]]:
    name = unique_name("bulk")
    client.post("/register", json={"username": name, "password": PASSWORD}).raise_for_status()
    token = client.post("/login", json={"username": name, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    if deposit:
        client.post("/deposit", json={"amount": deposit}, headers=headers).raise_for_status()
    return name, headers


def usd(client: httpx.Client, headers: dict[str, str]) -> str:
    return str(client.get("/balance", headers=headers).json()["balance"])


def item(to: str, amount: str, key: str | None = None) -> dict[str, Any]:
    return {"to_username": to, "amount": amount, "idempotency_key": key or uuid.uuid4().hex}


def batch(
    client: httpx.Client, headers: dict[str, str], items: list[dict[str, Any]], mode: str
) -> httpx.Response:
    return client.post("/transfers/batch", json={"mode": mode, "items": items}, headers=headers)


def test_independent_batch_over_rest(client: httpx.Client, wallet: RunningWallet) -> None:
    _, alice = user(client, deposit="10.00")
    bob, bob_h = user(client)
    items = [item(bob, "4.00"), item(unique_name("nobody"), "1"), item(bob, "7.00"), item(bob, "6")]
    reply = batch(client, alice, items, "independent")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["succeeded"], body["failed"]) == (2, 2)
    results = body["results"]
    assert [r["ok"] for r in results] == [True, False, False, True]
    assert results[1]["error"]["status"] == 404
    assert results[1]["error"]["code"] == "recipient_not_found"
    assert results[2]["error"] == {
        "status": 422,
        "code": "insufficient_funds",
        "message": results[2]["error"]["message"],
    }
    assert results[3]["balance"] == "0.00"
    again = batch(client, alice, items, "independent").json()["results"]
    assert [r["replayed"] for r in again] == [True, None, None, True]
    assert [r["transaction_id"] for r in again] == [r["transaction_id"] for r in results]
    assert usd(client, alice) == "0.00" and usd(client, bob_h) == "10.00"
    assert verify_ledger(wallet.store) == []


def test_atomic_batch_over_rest(client: httpx.Client, wallet: RunningWallet) -> None:
    _, alice = user(client, deposit="10.00")
    bob, bob_h = user(client)
    items = [item(bob, "4.00"), item(bob, "5.00"), item(bob, "3.00")]
    refused = batch(client, alice, items, "atomic")
    body = assert_error(refused, 422, "insufficient_funds")
    assert body["msg"].startswith("items[2]: ")
    assert usd(client, alice) == "10.00" and usd(client, bob_h) == "0.00"
    committed = batch(client, alice, items[:2], "atomic")
    assert committed.status_code == 200 and committed.json()["succeeded"] == 2
    assert usd(client, alice) == "1.00" and usd(client, bob_h) == "9.00"
    assert verify_ledger(wallet.store) == []


@pytest.mark.parametrize(
    ("count", "code"),
    [(0, "empty_batch"), (1001, "batch_too_large"), (-1, "duplicate_idempotency_key")],
    ids=["empty", "1001", "duplicate-keys"],
)
def test_bad_batches_are_400_and_move_nothing(
    client: httpx.Client, wallet: RunningWallet, count: int, code: str
) -> None:
    _, alice = user(client, deposit="20.00")
    bob, _ = user(client)
    items = [item(bob, "0.01") for _ in range(max(count, 0))]
    if count == -1:
        items = [item(bob, "1.00", "k1"), item(bob, "2.00", "k1")]
    assert_error(batch(client, alice, items, "independent"), 400, code)
    assert usd(client, alice) == "20.00"


def test_a_full_batch_fits_the_body_limit(client: httpx.Client, wallet: RunningWallet) -> None:
    _, alice = user(client, deposit="10.00")
    bob, bob_h = user(client)
    # 1,000 items with long keys: well over the 64 KiB of the other endpoints.
    items = [item(bob, "0.01", key=uuid.uuid4().hex * 2) for _ in range(1000)]
    reply = batch(client, alice, items, "atomic")
    assert reply.status_code == 200, reply.text[:300]
    assert reply.json()["succeeded"] == 1000
    assert usd(client, bob_h) == "10.00"
    assert verify_ledger(wallet.store) == []


def test_unknown_mode_and_fields_are_400(client: httpx.Client, wallet: RunningWallet) -> None:
    _, alice = user(client)
    bob, _ = user(client)
    assert batch(client, alice, [item(bob, "1")], "sometimes").status_code == 400
    odd = [{**item(bob, "1"), "note": "x"}]
    assert batch(client, alice, odd, "atomic").status_code == 400
