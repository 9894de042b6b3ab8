"""The outbox's delivery worker: claims due events with a lease, hands each to the channels
that want it, and records the outcome (sent, retry later with backoff, or dead letter).

It runs as a thread of the wallet process (`Notifier.start`): no extra process to deploy or
supervise, and every replica runs one safely, since a claim is a lease in the shared
database (PostgreSQL `FOR UPDATE SKIP LOCKED`), so two workers never hold the same event at
once, and the lease of a worker that died runs out and the event is claimed again.
Delivery is therefore at-least-once: a worker can die after sending and before recording
it. Every message carries the event id so receivers de-duplicate.

Only the store contract and the channels' protocol are used here; the channels themselves
(SMTP, .eml files, webhooks) are adapters in wallet_service.channels.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from wallet_service.events import Event, OutboxEntry, OutboxStatus, RetryPolicy, Settlement
from wallet_service.ids import uuid7
from wallet_service.models import utc_now
from wallet_service.store_contract import WalletStore

log = logging.getLogger("wallet.notifier")


class DeliveryFailed(Exception):
    """A channel could not deliver. `permanent`: retrying cannot help (dead-letter now)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    """One destination of events (an email route, a webhook URL)."""

    @property
    def name(self) -> str:
        """Stable key of the destination, recorded once it took an event (so a retry of
        the event skips it)."""

    def wants(self, event: Event) -> bool: ...

    def deliver(self, event: Event) -> None:
        """Send `event` (carrying its id); DeliveryFailed when it did not arrive."""


@dataclass(frozen=True)
class NotifierConfig:
    lease_seconds: float = 60.0
    batch: int = 20
    poll_seconds: float = 1.0
    policy: RetryPolicy = RetryPolicy()


class Notifier:
    def __init__(
        self,
        store: WalletStore,
        channels: Sequence[Channel],
        config: NotifierConfig = NotifierConfig(),
        *,
        clock: Callable[[], datetime] = utc_now,
        rand: random.Random | None = None,
        owner: str | None = None,
    ) -> None:
        self.store, self.channels, self.config = store, list(channels), config
        self.clock, self.rand = clock, rand or random.Random()
        self.owner = owner or f"notifier-{uuid7()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Claim one batch of due events and deliver it; how many were claimed. The
        outcomes are recorded together (`settle_events`: one transaction for the round),
        or sooner if the round takes half the lease, so no lease runs out unrecorded."""
        claimed_at = self.clock()
        entries = self.store.claim_events(
            owner=self.owner,
            now=claimed_at,
            lease_seconds=self.config.lease_seconds,
            limit=self.config.batch,
        )
        outcomes: list[Settlement] = []
        for entry in entries:
            outcomes.append(self._deliver(entry))
            if (self.clock() - claimed_at).total_seconds() > self.config.lease_seconds / 2:
                self._settle(outcomes)
                outcomes, claimed_at = [], self.clock()
        self._settle(outcomes)
        return len(entries)

    def _deliver(self, entry: OutboxEntry) -> Settlement:
        done, failures, permanent = set(entry.delivered_to), [], False
        for channel in self.channels:
            if channel.name in done or not channel.wants(entry.event):
                continue
            try:
                channel.deliver(entry.event)
                done.add(channel.name)
            except DeliveryFailed as exc:
                failures.append(f"{channel.name}: {exc}")
                permanent = permanent or exc.permanent
        return self._outcome(entry, frozenset(done), failures, permanent)

    def _outcome(
        self, entry: OutboxEntry, done: frozenset[str], failures: list[str], permanent: bool
    ) -> Settlement:
        if not failures:
            return Settlement(entry.event.id, done, OutboxStatus.SENT)
        retry_at = (
            None
            if permanent
            else self.config.policy.next_attempt(
                attempts=entry.attempts, now=self.clock(), rand=self.rand
            )
        )
        log.warning(
            "event %s (%s) attempt %d failed, %s: %s",
            entry.event.id,
            entry.event.type,
            entry.attempts,
            "retrying" if retry_at else "dead-lettered",
            "; ".join(failures),
        )
        status = OutboxStatus.PENDING if retry_at else OutboxStatus.DEAD
        return Settlement(entry.event.id, done, status, retry_at, "; ".join(failures))

    def _settle(self, outcomes: list[Settlement]) -> None:
        if not outcomes:
            return
        settled = self.store.settle_events(owner=self.owner, settlements=outcomes, now=self.clock())
        for outcome in outcomes:
            if outcome.event_id not in settled:  # our lease ran out: another worker owns it
                log.warning(
                    "event %s: lease lost before its outcome was recorded", outcome.event_id
                )

    # -- as a thread of the wallet process ------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.run_once()
            except Exception:  # the database is down, say: keep the worker alive, retry
                log.exception("notifier round failed")
                claimed = 0
            # A full batch means a backlog: claim again at once. Otherwise the outbox is
            # drained; wait, so that under load each round claims a batch, not an event.
            if claimed < self.config.batch:
                self._stop.wait(self.config.poll_seconds)
