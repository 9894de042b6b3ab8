"""Fixtures of the notification tests: a webhook receiver, an SMTP server, fresh stores."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.support import CreateDatabase, database_url
from tests.support.notify import Received, SmtpCatcher, WebhookReceiver
from wallet_service.database import create_db_engine, migrate
from wallet_service.store import SqlStore

HOLD_GUARD = 120.0  # seconds a held request may wait for the test to release it


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    state = WebhookReceiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                hold = state.hold_first and not state.got
                status = state.statuses.pop(0) if state.statuses else 200
                state.got.append(Received(dict(self.headers.items()), body, status))
            if hold:
                state.holding.set()
                state.release.wait(HOLD_GUARD)
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
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database_factory: CreateDatabase
) -> Iterator[SqlStore]:
    """A migrated store of its own, so no other test's events are in its outbox."""
    engine = create_db_engine(database_url(request.param, tmp_path, pg_database_factory))
    migrate(engine)
    yield SqlStore(engine)
    engine.dispose()


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
