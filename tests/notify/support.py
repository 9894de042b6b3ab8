"""Real receivers on loopback for the notifier tests, a clock the tests move, fresh stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

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


def store_events(store: SqlStore, count: int, at: datetime) -> list[Event]:
    events = [
        Event(id=uuid7(), type=EventType.USER_FROZEN, created_at=at, data={"n": n})
        for n in range(count)
    ]
    store._db.write(lambda conn: add_events(conn, events))
    return events
