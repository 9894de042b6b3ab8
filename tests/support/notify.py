"""Helpers of the notification tests: real receivers on loopback (webhooks, SMTP), a clock
the tests move, events stored directly, and what the outbox holds."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiosmtpd.smtp import Envelope
from sqlalchemy import select, update

from tests.support.servers import RunningWallet
from wallet_service.events import Event, EventType, OutboxStatus
from wallet_service.ids import uuid7
from wallet_service.models import utc_now
from wallet_service.schema import outbox_events
from wallet_service.store import SqlStore
from wallet_service.store.outbox import add_events


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class WebhookReceiver:
    """An HTTP server answering the scripted statuses in turn (then 200) and keeping every
    request it got."""

    statuses: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    url: str = ""

    def answered(self, status: int) -> list[Received]:
        return [r for r in self.got if r.status == status]


class Clock:
    """The notifier's clock, moved by the test (no sleeping on wall time)."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


FLAGGED_DATA = {
    "transaction_id": "tx-1",
    "transaction_type": "deposit",
    "amount": "10000.00",
    "currency": "USD",
    "from_username": None,
    "to_username": "alice",
    "fraud_decision": "REVIEW",
    "fraud_score": 60,
    "fraud_reasons": [{"rule_id": "large_amount", "description": "big"}],
    "rules_version": "v1",
}


def store_events(
    store: SqlStore, count: int, at: datetime, kind: EventType = EventType.USER_FROZEN
) -> list[Event]:
    data = FLAGGED_DATA if kind is EventType.TRANSACTION_FLAGGED else {}
    events = [
        Event(id=uuid7(), type=kind, created_at=at, data=dict(data, n=n)) for n in range(count)
    ]
    store._db.write(lambda conn: add_events(conn, events))
    return events


def store_dead_events(store: SqlStore, count: int, error: str = "receiver said 500") -> list[Event]:
    """`count` events that a worker gave up on (dead), written directly."""
    events = store_events(store, count, utc_now())
    ids = [e.id for e in events]
    stmt = (
        update(outbox_events)
        .where(outbox_events.c.id.in_(ids))
        .values(status=OutboxStatus.DEAD.value, attempts=8, last_error=error)
    )
    store._db.write(lambda conn: conn.execute(stmt))
    return events


@dataclass
class SmtpCatcher:
    """A real SMTP server (aiosmtpd) on loopback answering the scripted replies in turn
    (then 250) to each message, keeping the ones it accepted."""

    replies: list[str] = field(default_factory=list)
    accepted: list[Envelope] = field(default_factory=list)
    refused: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        reply = self.replies.pop(0) if self.replies else "250 OK"
        if reply.startswith("250"):
            self.accepted.append(envelope)
            self.arrived.set()
        else:
            self.refused += 1
        return reply


def events_about(running: RunningWallet, key: str, value: str) -> list[dict[str, Any]]:
    """The outbox events whose data[key] is `value`, oldest first."""
    with running.store.engine.connect() as conn:
        rows = conn.execute(select(outbox_events).order_by(outbox_events.c.id)).all()
    found = [dict(json.loads(r.payload), status=r.status) for r in rows]
    return [e for e in found if e["data"].get(key) == value]
