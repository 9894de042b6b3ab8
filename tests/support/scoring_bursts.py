"""Bursts of one sender's transfers, sent in sequence or all at once, and their verdicts.

Shared by the scoring-under-concurrency tests (one server, two replicas). Each movement's
verdict is read as an admin (GetTransaction): the parties no longer see fraud reasons.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.support.grpc_clients import Metadata, admin_auth, new_user, seen_by_admin

Stub = wallet_pb2_grpc.WalletServiceStub
Verdicts = Counter[tuple[str, ...]]
CALL_TIMEOUT = 60.0  # a hang guard only


@dataclass(frozen=True)
class Scenario:
    funding: str  # deposited first, one movement
    amount: str  # of each transfer
    count: int
    rule: str  # the rule the burst must still trip
    expected_hits: int  # how often it trips in sequence (so the test can fail)


# Velocity: 10 movements in an hour; the deposit is the first, transfers 9..14 trip it.
VELOCITY = Scenario(funding="100.00", amount="1.00", count=14, rule="velocity", expected_hits=6)
# Structuring: three movements in [9,000, 10,000) whose sum reaches 10,000; transfers 3..5.
STRUCTURING = Scenario(
    funding="100000.00", amount="9500.00", count=5, rule="structuring", expected_hits=3
)


def run_in(stubs: list[Stub], scenario: Scenario, *, at_once: bool) -> Verdicts:
    """Fund a fresh sender, send the transfers (alternating over `stubs`), tally verdicts."""
    _, auth = new_user(stubs[0])
    payee, _ = new_user(stubs[0])
    stubs[0].Deposit(
        pb.DepositRequest(amount=scenario.funding, currency="USD"),
        metadata=auth,
        timeout=CALL_TIMEOUT,
    )
    request = pb.TransferRequest(to_username=payee, amount=scenario.amount, currency="USD")
    replies = send_burst(
        lambda i: stubs[i % len(stubs)].Transfer(request, metadata=auth, timeout=CALL_TIMEOUT),
        scenario.count,
        at_once=at_once,
    )
    return tally(stubs[0], replies, admin_auth(stubs[0]))


def send_burst(
    send: Callable[[int], pb.MovementResponse], count: int, *, at_once: bool
) -> list[pb.MovementResponse]:
    """`send(0..count-1)` one after another, or all released at once by one barrier."""
    if not at_once:
        replies = [send(i) for i in range(count)]
    else:
        barrier = threading.Barrier(count)

        def released(i: int) -> pb.MovementResponse:
            barrier.wait(timeout=CALL_TIMEOUT)
            return send(i)

        with ThreadPoolExecutor(max_workers=count) as pool:
            replies = list(pool.map(released, range(count)))
    assert all(r.transaction.status == "completed" for r in replies)
    return replies


def tally(stub: Stub, replies: list[pb.MovementResponse], admin: Metadata) -> Verdicts:
    """The rule ids of each movement, as an admin reads them (a multiset: no order)."""
    seen = [seen_by_admin(stub, r.transaction.id, admin) for r in replies]
    return Counter(tuple(sorted(reason.rule_id for reason in tx.fraud_reasons)) for tx in seen)


def hits(verdicts: Verdicts, rule: str) -> int:
    return sum(n for rules, n in verdicts.items() if rule in rules)
