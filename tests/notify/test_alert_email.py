"""Fraud alert emails over SMTP to a real aiosmtpd server on loopback: end to end through
the gateway (the wallet's own worker), and the notifier's handling of temporary (451) and
permanent (550) answers, with an injected clock."""

from __future__ import annotations

import email
import email.policy
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    CreateDatabase,
    GatewayThread,
    RunningWallet,
    database_url,
    gateway_settings,
    start_wallet,
    wallet_settings,
)
from tests.support.notify import Clock, SmtpCatcher, events_about, store_events
from wallet_service.channels import AlertRoute, EmlDirectoryAlertEmail, SmtpAlertEmail
from wallet_service.events import Event, EventType, OutboxStatus, RetryPolicy
from wallet_service.notifier import Notifier, NotifierConfig
from wallet_service.store import SqlStore

HANG_GUARD = 60.0
ALERTS = "fraud-team@example.test"
ROUTE = AlertRoute("wallet@example.test", (ALERTS,), "http://wallet.example.test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def notifying_wallet(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_database_factory: CreateDatabase,
    fraud_addr: str,
    smtp: SmtpCatcher,
) -> Iterator[tuple[RunningWallet, str]]:
    """A wallet running its outbox worker towards the SMTP catcher, and a gateway before it."""
    url = database_url(request.param, tmp_path, pg_database_factory)
    env = {
        "NOTIFY_WORKER": "true",
        "NOTIFY_POLL_MS": "20",
        "SMTP_URL": smtp.url,
        "MAIL_FROM": "wallet@example.test",
        "FRAUD_ALERT_EMAILS": ALERTS,
    }
    running = start_wallet(wallet_settings(url, fraud_addr, **env), request.param)
    gateway = GatewayThread(gateway_settings(running.addr))
    gateway.start()
    yield running, gateway.url
    gateway.stop()
    running.server.stop(0)


def test_a_flagged_deposit_through_the_gateway_mails_one_alert(
    notifying_wallet: tuple[RunningWallet, str],
    smtp: SmtpCatcher,
) -> None:
    running, base_url = notifying_wallet
    with httpx.Client(base_url=base_url, timeout=HANG_GUARD) as api:
        credentials = {"username": "mallory_outbox", "password": "correct horse battery"}
        assert api.post("/register", json=credentials).status_code == 201
        token = api.post("/login", json=credentials).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        deposit = api.post("/deposit", json={"amount": "10000.00", "currency": "USD"}, headers=auth)
        assert deposit.status_code in (200, 201), deposit.text
    tx_id = deposit.json()["transaction_id"]
    assert smtp.arrived.wait(HANG_GUARD)
    [envelope] = smtp.accepted
    assert envelope.rcpt_tos == [ALERTS] and envelope.mail_from == "wallet@example.test"
    message = email.message_from_bytes(
        envelope.original_content or b"", policy=email.policy.default
    )
    [event] = events_about(running, "transaction_id", tx_id)
    assert message["X-Wallet-Event-Id"] == event["id"]
    assert message["Message-ID"] == f"<{event['id']}@wallet>"
    text = message.get_body().get_content()  # type: ignore[union-attr]
    assert "10000.00 USD" in text and "mallory_outbox" in text and tx_id in text
    assert f"/admin/transactions/{tx_id}" in text


def smtp_notifier(store: SqlStore, url: str, clock: Clock) -> Notifier:
    config = NotifierConfig(policy=RetryPolicy(max_attempts=5, cap_seconds=60))
    return Notifier(store, [SmtpAlertEmail(url, ROUTE)], config, clock=clock, rand=random.Random(1))


def _first_attempt_answered(
    store: SqlStore, smtp: SmtpCatcher, reply: str
) -> tuple[Clock, Event, Notifier]:
    """One flagged-transaction alert, and the worker's first attempt answered with `reply`."""
    clock = Clock()
    [event] = store_events(store, 1, clock.now, EventType.TRANSACTION_FLAGGED)
    smtp.replies = [reply]
    worker = smtp_notifier(store, smtp.url, clock)
    assert worker.run_once() == 1
    return clock, event, worker


def test_a_temporary_smtp_refusal_is_retried(
    fresh_store: SqlStore,
    smtp: SmtpCatcher,
) -> None:
    clock, event, worker = _first_attempt_answered(fresh_store, smtp, "451 4.3.0 try again later")
    assert smtp.refused == 1 and smtp.accepted == []
    assert worker.run_once() == 0  # backing off
    clock.advance(60)
    assert worker.run_once() == 1
    [envelope] = smtp.accepted
    assert f"X-Wallet-Event-Id: {event.id}".encode() in (envelope.original_content or b"")
    assert fresh_store.outbox_counts()[OutboxStatus.SENT] == 1


def test_a_permanent_smtp_refusal_dead_letters_at_once(
    fresh_store: SqlStore,
    smtp: SmtpCatcher,
) -> None:
    clock, event, worker = _first_attempt_answered(fresh_store, smtp, "550 5.1.1 no such mailbox")
    counts = fresh_store.outbox_counts()
    assert counts[OutboxStatus.DEAD] == 1 and counts[OutboxStatus.PENDING] == 0
    # After the fix, an admin's retry sends it.
    assert fresh_store.retry_dead_event(event_id=event.id, now=clock.now)
    assert worker.run_once() == 1
    assert len(smtp.accepted) == 1


def test_without_smtp_each_alert_is_an_eml_file(
    fresh_store: SqlStore,
    tmp_path: Path,
) -> None:
    clock = Clock()
    events = store_events(fresh_store, 2, clock.now, EventType.TRANSACTION_FLAGGED)
    store_events(fresh_store, 1, clock.now)  # not an alert: no email
    channel = EmlDirectoryAlertEmail(tmp_path / "mail", ROUTE)
    assert Notifier(fresh_store, [channel], clock=clock).run_once() == 3
    files = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert files == sorted(f"{e.id}.eml" for e in events)
