"""Real receivers on loopback for the notifier tests, a clock the tests move, fresh stores."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from tests.conftest import database_url
from wallet_service.database import create_db_engine, migrate
from wallet_service.events import Event, EventType
from wallet_service.ids import uuid7
from wallet_service.models import utc_now
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


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    state = WebhookReceiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                status = state.statuses.pop(0) if state.statuses else 200
                state.got.append(Received(dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


class Clock:
    """The notifier's clock, moved by the test (no sleeping on wall time)."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database_factory: object
) -> Iterator[SqlStore]:
    """A migrated store of its own, so no other test's events are in its outbox."""
    engine = create_db_engine(database_url(request.param, tmp_path, pg_database_factory))
    migrate(engine)
    yield SqlStore(engine)
    engine.dispose()


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


@pytest.fixture
def smtp() -> Iterator[SmtpCatcher]:
    catcher = SmtpCatcher()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        catcher.port = sock.getsockname()[1]
    controller = Controller(catcher, hostname="127.0.0.1", port=catcher.port)
    controller.start()
    yield catcher
    controller.stop()
