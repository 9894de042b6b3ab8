"""The delivery worker on both stores, against a real HTTP receiver on loopback: signed
webhooks, retries with backoff, the dead letter, lease expiry after a crash, and two
workers that never hold the same event. Time is an injected clock, moved by the tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
from datetime import timedelta

from tests.support.notify import Clock, WebhookReceiver, store_events
from wallet_service.channels import WebhookChannel
from wallet_service.events import Event, OutboxStatus, RetryPolicy, Settlement
from wallet_service.notifier import Notifier, NotifierConfig
from wallet_service.store import SqlStore

HANG_GUARD = 30.0
POLICY = RetryPolicy(max_attempts=5, base_seconds=2.0, cap_seconds=60.0)


def notifier(store: SqlStore, channels: list[object], clock: Clock, **config: object) -> Notifier:
    settings = NotifierConfig(policy=POLICY, **config)  # type: ignore[arg-type]
    return Notifier(store, channels, settings, clock=clock, rand=random.Random(7))  # type: ignore[arg-type]


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's recipe, as documented in the README."""
    parts = [p.split("=", 1) for p in headers["Webhook-Signature"].split(",")]
    timestamp = next(v for k, v in parts if k == "t")
    assert timestamp == headers["Webhook-Timestamp"]
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in parts)


def test_webhook_is_signed_once_per_secret_and_carries_the_event_id(
    fresh_store: SqlStore,
    receiver: WebhookReceiver,
) -> None:
    clock = Clock()
    [event] = store_events(fresh_store, 1, clock.now)
    hook = WebhookChannel(receiver.url, ["old-secret", "new-secret"])
    assert notifier(fresh_store, [hook], clock).run_once() == 1
    [got] = receiver.got
    assert got.headers["Webhook-Id"] == event.id
    assert json.loads(got.body)["id"] == event.id
    assert json.loads(got.body)["type"] == "user.frozen"
    assert verify("old-secret", got.headers, got.body)
    assert verify("new-secret", got.headers, got.body)
    assert not verify("another-secret", got.headers, got.body)
    assert not verify("new-secret", got.headers, got.body + b" ")
    assert fresh_store.outbox_counts()[OutboxStatus.SENT] == 1


def retry_until_settled(worker: Notifier, clock: Clock, rounds: int) -> list[int]:
    """Run `rounds` rounds, each after the backoff's cap; what each claimed."""
    claimed = []
    for _ in range(rounds):
        claimed.append(worker.run_once())
        # Not due again before its backoff ran out:
        assert worker.run_once() == 0
        clock.advance(POLICY.cap_seconds)
    return claimed


def test_a_failing_receiver_gets_the_event_once_after_retries(
    fresh_store: SqlStore,
    receiver: WebhookReceiver,
) -> None:
    clock = Clock()
    [event] = store_events(fresh_store, 1, clock.now)
    receiver.statuses = [503, 500, 429]
    worker = notifier(fresh_store, [WebhookChannel(receiver.url, ["s"])], clock)
    assert retry_until_settled(worker, clock, 5) == [1, 1, 1, 1, 0]
    assert [r.status for r in receiver.got] == [503, 500, 429, 200]
    assert {r.headers["Webhook-Id"] for r in receiver.got} == {event.id}
    assert len(receiver.answered(200)) == 1
    assert fresh_store.outbox_counts()[OutboxStatus.SENT] == 1


def test_dead_letter_after_max_attempts_then_admin_retry(
    fresh_store: SqlStore,
    receiver: WebhookReceiver,
) -> None:
    clock = Clock()
    [event] = store_events(fresh_store, 1, clock.now)
    receiver.statuses = [500] * POLICY.max_attempts
    worker = notifier(fresh_store, [WebhookChannel(receiver.url, ["s"])], clock)
    assert retry_until_settled(worker, clock, POLICY.max_attempts + 2) == [1] * 5 + [0, 0]
    [dead] = fresh_store.list_outbox(status=OutboxStatus.DEAD, limit=10)
    assert dead.event.id == event.id and dead.last_error and "HTTP 500" in dead.last_error
    assert fresh_store.outbox_counts()[OutboxStatus.DEAD] == 1
    assert fresh_store.retry_dead_event(event_id=event.id, now=clock.now)
    assert worker.run_once() == 1
    assert fresh_store.outbox_counts()[OutboxStatus.SENT] == 1
    assert len(receiver.answered(200)) == 1


def test_an_event_claimed_by_a_worker_that_died_is_delivered_after_its_lease(
    fresh_store: SqlStore,
    receiver: WebhookReceiver,
) -> None:
    clock = Clock()
    [event] = store_events(fresh_store, 1, clock.now)
    # A worker claims the event and dies before delivering (nothing else of it runs).
    [claimed] = fresh_store.claim_events(owner="dead", now=clock.now, lease_seconds=30, limit=5)
    assert claimed.event.id == event.id
    survivor = notifier(fresh_store, [WebhookChannel(receiver.url, ["s"])], clock)
    assert survivor.run_once() == 0  # leased: not taken while the lease holds
    clock.advance(31)
    assert survivor.run_once() == 1
    assert [r.headers["Webhook-Id"] for r in receiver.got] == [event.id]
    # The dead worker's late outcome is refused: the event is no longer its own.
    late = fresh_store.settle_event(
        event_id=event.id,
        owner="dead",
        delivered_to=frozenset(),
        status=OutboxStatus.DEAD,
        next_attempt_at=None,
        error="late",
        now=clock.now,
    )
    assert not late and fresh_store.outbox_counts()[OutboxStatus.SENT] == 1


class Recording:
    """A channel that records deliveries; the first one waits until released."""

    def __init__(self, name: str) -> None:
        self.name, self.delivered = name, []  # type: ignore[var-annotated]
        self.inside, self.release = threading.Event(), threading.Event()

    def wants(self, event: Event) -> bool:
        return True

    def deliver(self, event: Event) -> None:
        self.inside.set()
        assert self.release.wait(HANG_GUARD)
        self.delivered.append(event.id)


def test_two_workers_never_deliver_the_same_event(fresh_store: SqlStore) -> None:
    clock = Clock()
    events = store_events(fresh_store, 12, clock.now)
    first, second = Recording("first"), Recording("second")
    worker_a = notifier(fresh_store, [first], clock, batch=5)
    worker_b = notifier(fresh_store, [second], clock, batch=50)
    thread = threading.Thread(target=worker_a.run_once)
    thread.start()
    # Worker A holds its claimed events (it is inside its first delivery) while B claims.
    assert first.inside.wait(HANG_GUARD)
    second.release.set()
    assert worker_b.run_once() == 7
    first.release.set()
    thread.join(HANG_GUARD)
    assert len(first.delivered) == 5 and len(second.delivered) == 7
    assert sorted(first.delivered + second.delivered) == sorted(e.id for e in events)
    assert fresh_store.outbox_counts()[OutboxStatus.SENT] == 12


def test_a_round_of_outcomes_is_settled_together_and_only_where_the_lease_is_held(
    fresh_store: SqlStore,
) -> None:
    clock = Clock()
    events = store_events(fresh_store, 4, clock.now)
    mine = fresh_store.claim_events(owner="me", now=clock.now, lease_seconds=30, limit=3)
    assert [e.event.id for e in mine] == sorted(e.id for e in events)[:3]
    [theirs] = fresh_store.claim_events(owner="them", now=clock.now, lease_seconds=30, limit=5)
    later = clock.now + timedelta(seconds=5)
    outcomes = [
        Settlement(mine[0].event.id, frozenset({"a"}), OutboxStatus.SENT),
        Settlement(mine[1].event.id, frozenset({"a"}), OutboxStatus.SENT),
        Settlement(mine[2].event.id, frozenset(), OutboxStatus.PENDING, later, "a: down"),
        Settlement(theirs.event.id, frozenset({"a"}), OutboxStatus.SENT),  # not ours
    ]
    settled = fresh_store.settle_events(owner="me", settlements=outcomes, now=clock.now)
    assert settled == {e.event.id for e in mine}
    counts = fresh_store.outbox_counts()
    assert counts[OutboxStatus.SENT] == 2 and counts[OutboxStatus.PENDING] == 2
    retried = fresh_store.get_outbox_event(mine[2].event.id)
    assert retried is not None and retried.last_error == "a: down"
    assert retried.next_attempt_at == later
    # The other worker's event is still leased to it: nobody claims it now.
    assert fresh_store.claim_events(owner="me", now=clock.now, lease_seconds=30, limit=5) == []
