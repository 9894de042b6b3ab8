"""Helpers of the notification tests: real receivers on loopback (webhooks, SMTP), a clock
the tests move, events stored directly, and what the outbox holds."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from aiosmtpd.smtp import Envelope
from sqlalchemy import select, update
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from common.processes import ServiceProcess, free_address
from tests.support.grpc_clients import new_user
from tests.support.processes import SpawnService
from tests.support.servers import TEST_JWT_SECRET, RunningWallet
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
    # hold_first: the first request is kept unanswered (`holding` set once it arrived)
    # until `release` is set, so a test can kill the sender mid-delivery.
    hold_first: bool = False
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def answered(self, status: int) -> list[Received]:
        return [r for r in self.got if r.status == status]

    def ids(self) -> list[str]:
        """The Webhook-Id of every request so far, in arrival order."""
        return [r.headers["Webhook-Id"] for r in list(self.got)]


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


def worker_env(**channels: str) -> dict[str, str]:
    """A wallet's settings with its outbox delivery worker on (polling every 20 ms) and no
    fraud alert emails, plus `channels` (webhook URLs, SMTP, a mail directory, ...)."""
    return {"NOTIFY_WORKER": "true", "NOTIFY_POLL_MS": "20", "FRAUD_ALERT_EMAILS": "", **channels}


def webhook_env(hook_url: str, secret: str, mail_dir: Path) -> dict[str, str]:
    """`worker_env` posting every event to the webhook `hook_url` signed with `secret`."""
    return worker_env(WEBHOOK_URLS=hook_url, WEBHOOK_SECRETS=secret, MAIL_DIR=str(mail_dir))


def start_notifying_wallet(
    spawn: SpawnService, url: str, hook: WebhookReceiver, work_dir: Path, **env: str
) -> ServiceProcess:
    """`python -m wallet_service` on `url` with its delivery worker posting every event to
    `hook` (no alert emails), serving; `.address` is where. Restart it with `.start()`."""
    addr = free_address()
    process = spawn(
        f"wallet-{addr.rsplit(':', 1)[1]}",
        "wallet_service",
        APP_ENV="test",
        WALLET_ADDR=addr,
        WALLET_DATABASE_URL=url,
        JWT_SECRET_KEY=TEST_JWT_SECRET,
        FRAUD_ADDR="",  # the in-process seed rule: 10,000 and more is flagged
        WALLET_GRACE_SECONDS="1",
        **webhook_env(hook.url, "process-secret", work_dir / "mail"),
        **env,
    )
    process.address = addr
    process.start()
    process.wait_grpc_serving(addr, timeout=120)
    return process


def flagged_deposits(address: str, count: int) -> list[str]:
    """`count` deposits of 10,000 USD by one new user through the wallet at `address`
    (each flagged, so each reports a `transaction.flagged` event); their transaction ids."""
    with grpc.insecure_channel(address) as channel:
        stub = wallet_pb2_grpc.WalletServiceStub(channel)
        _, auth = new_user(stub)
        return [
            stub.Deposit(
                wallet_pb2.DepositRequest(
                    amount="10000.00", currency="USD", idempotency_key=uuid.uuid4().hex
                ),
                metadata=auth,
                timeout=60,
            ).transaction.id
            for _ in range(count)
        ]


def event_ids_of(store: SqlStore, tx_ids: list[str]) -> list[str]:
    """The ids of the outbox events about these transactions, oldest first."""
    wanted = set(tx_ids)
    entries = store.list_outbox(status=None, limit=100_000)
    return [e.event.id for e in entries if e.event.data.get("transaction_id") in wanted]


def outbox_row(store: SqlStore, event_id: str) -> dict[str, Any]:
    """The outbox row of `event_id`, lease columns included."""
    with store.engine.connect() as conn:
        row = conn.execute(select(outbox_events).where(outbox_events.c.id == event_id)).one()
    return dict(row._mapping)


def events_about(running: RunningWallet, key: str, value: str) -> list[dict[str, Any]]:
    """The outbox events whose data[key] is `value`, oldest first."""
    with running.store.engine.connect() as conn:
        rows = conn.execute(select(outbox_events).order_by(outbox_events.c.id)).all()
    found = [dict(json.loads(r.payload), status=r.status) for r in rows]
    return [e for e in found if e["data"].get(key) == value]
