"""A burst of one sender's movements is scored exactly as the same movements in sequence.

Each scenario runs twice on fresh users: once one call after another, once with every call
released by one barrier. The multiset of verdicts (rule ids per movement) must be equal:
the features of each movement counted every earlier movement of the sender, committed or
merely decided. Over gRPC on both stores and through the gateway (REST); the two-replica
case is in tests/postgres/test_replicas.py.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import (
    CALL_TIMEOUT,
    PASSWORD,
    STRUCTURING,
    VELOCITY,
    RunningWallet,
    Scenario,
    Stub,
    hits,
    run_in,
    unique_name,
)
from wallet_service.ledger import verify_ledger


@pytest.mark.parametrize("scenario", [VELOCITY, STRUCTURING], ids=["velocity", "structuring"])
def test_a_burst_is_scored_as_the_same_movements_in_sequence(
    stub: Stub, wallet: RunningWallet, scenario: Scenario
) -> None:
    in_sequence = run_in([stub], scenario, at_once=False)
    assert hits(in_sequence, scenario.rule) == scenario.expected_hits, in_sequence
    contended_before = wallet.store.sender_turns.contended
    at_once = run_in([stub], scenario, at_once=True)
    assert at_once == in_sequence
    # The calls really met: some of them found the sender's turn taken and waited for it.
    assert wallet.store.sender_turns.contended > contended_before
    assert verify_ledger(wallet.store) == []


def test_a_burst_through_the_gateway_is_scored_as_in_sequence(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=CALL_TIMEOUT) as client:
        in_sequence = rest_burst(client, at_once=False)
        at_once = rest_burst(client, at_once=True)
    assert in_sequence == [False] * 8 + [True] * 6  # velocity, as over gRPC
    assert at_once == in_sequence


def rest_burst(client: httpx.Client, *, at_once: bool) -> list[bool]:
    """VELOCITY over REST: each transfer's `flagged` (the parties still see it; the reasons
    are admin-only), sorted (a burst has no order)."""
    sender, payee = unique_name(), unique_name()
    for name in (sender, payee):
        assert client.post("/register", json={"username": name, "password": PASSWORD}).is_success
    token = client.post("/login", json={"username": sender, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    deposit = client.post("/deposit", json={"amount": "100.00"}, headers=headers)
    assert deposit.status_code == 201, deposit.text
    body = {"to_username": payee, "amount": "1.00"}

    def send(_: int) -> bool:
        reply = client.post("/transfer", json=body, headers=headers)
        assert reply.status_code == 201, reply.text
        return bool(reply.json()["flagged"])

    if not at_once:
        return sorted(send(i) for i in range(VELOCITY.count))
    barrier = threading.Barrier(VELOCITY.count)

    def released(i: int) -> bool:
        barrier.wait(timeout=CALL_TIMEOUT)
        return send(i)

    with ThreadPoolExecutor(max_workers=VELOCITY.count) as pool:
        return sorted(pool.map(released, range(VELOCITY.count)))
