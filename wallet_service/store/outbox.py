"""The transactional outbox: events stored inside the writes they report (`add_events`,
called by the other parts on their own connection, so inside their transaction), and the
delivery worker's claims, leases and outcomes. Contracts: wallet_service.store_contract."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import ColumnElement

from wallet_service.events import Event, EventType, OutboxEntry, OutboxStatus, Settlement
from wallet_service.models import as_utc
from wallet_service.schema import outbox_events
from wallet_service.store.db import Db

o = outbox_events


def add_events(conn: Connection, events: Sequence[Event]) -> None:
    """Store `events` as pending, due at once, on `conn`: in the caller's transaction, so
    they commit (or roll back) with the change they report."""
    if events:
        conn.execute(insert(outbox_events), [_event_row(e) for e in events])


def _event_row(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type.value,
        "payload": json.dumps(event.body(), sort_keys=True),
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": event.created_at,
        "delivered_to": "[]",
        "created_at": event.created_at,
    }


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Pending, due, and not leased (or its lease ran out: the worker holding it died)."""
    return (
        (o.c.status == OutboxStatus.PENDING.value)
        & (o.c.next_attempt_at <= now)
        & or_(o.c.lease_until.is_(None), o.c.lease_until <= now)
    )


class OutboxQueries:
    """The delivery side of the outbox, over the store's `Db`."""

    _db: Db

    def claim_events(
        self, *, owner: str, now: datetime, lease_seconds: float, limit: int
    ) -> list[OutboxEntry]:
        def work(conn: Connection) -> list[OutboxEntry]:
            # PostgreSQL: rows another claimer holds are skipped, not waited for. SQLite
            # renders no FOR UPDATE; its write lock (BEGIN IMMEDIATE) makes us the only
            # claimer, and the conditional UPDATE below claims only what is still free.
            due = conn.execute(
                select(o.c.id)
                .where(_claimable(now))
                .order_by(o.c.next_attempt_at, o.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars()
            ids = list(due)
            if not ids:
                return []
            # One UPDATE for the whole claim, conditional on each lease still being free.
            rows = conn.execute(
                update(o)
                .where(o.c.id.in_(ids), _claimable(now))
                .values(
                    lease_owner=owner,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=o.c.attempts + 1,
                )
                .returning(*o.c)
            ).all()
            return sorted((_entry(row) for row in rows), key=lambda e: e.event.id)

        return self._db.write(work)

    def settle_event(
        self,
        *,
        event_id: str,
        owner: str,
        delivered_to: frozenset[str],
        status: OutboxStatus,
        next_attempt_at: datetime | None,
        error: str | None,
        now: datetime,
    ) -> bool:
        settlement = Settlement(event_id, delivered_to, status, next_attempt_at, error)
        return event_id in self.settle_events(owner=owner, settlements=[settlement], now=now)

    def settle_events(
        self, *, owner: str, settlements: Sequence[Settlement], now: datetime
    ) -> set[str]:
        # Outcomes that write the same values share one UPDATE (a round of deliveries that
        # all went through is a single statement), all in one transaction.
        groups: dict[tuple[OutboxStatus, frozenset[str], datetime | None, str | None], list[str]]
        groups = {}
        for s in settlements:
            groups.setdefault((s.status, s.delivered_to, s.next_attempt_at, s.error), []).append(
                s.event_id
            )

        def work(conn: Connection) -> set[str]:
            settled: set[str] = set()
            for (status, delivered_to, next_attempt_at, error), ids in groups.items():
                values: dict[str, Any] = {
                    "status": status.value,
                    "lease_owner": None,
                    "lease_until": None,
                    "delivered_to": json.dumps(sorted(delivered_to)),
                    "last_error": error,
                }
                if next_attempt_at is not None:
                    values["next_attempt_at"] = next_attempt_at
                if status is OutboxStatus.SENT:
                    values["sent_at"] = now
                stmt = (
                    update(o)
                    .where(
                        o.c.id.in_(ids),
                        o.c.lease_owner == owner,
                        o.c.status == OutboxStatus.PENDING.value,
                    )
                    .values(**values)
                    .returning(o.c.id)
                )
                settled.update(conn.execute(stmt).scalars())
            return settled

        return self._db.write(work) if groups else set()

    def retry_dead_event(self, *, event_id: str, now: datetime) -> bool:
        stmt = (
            update(o)
            .where(o.c.id == event_id, o.c.status == OutboxStatus.DEAD.value)
            .values(status=OutboxStatus.PENDING.value, attempts=0, next_attempt_at=now)
        )
        return bool(self._db.write(lambda conn: conn.execute(stmt).rowcount) == 1)

    def outbox_counts(self) -> dict[OutboxStatus, int]:
        with self._db.read() as conn:
            rows = conn.execute(select(o.c.status, func.count()).group_by(o.c.status)).all()
        counts = {status: 0 for status in OutboxStatus}
        counts.update({OutboxStatus(r[0]): int(r[1]) for r in rows})
        return counts

    def list_outbox(
        self, *, status: OutboxStatus | None, limit: int, after_id: str | None = None
    ) -> list[OutboxEntry]:
        query = select(o).order_by(o.c.id).limit(limit)
        if status is not None:
            query = query.where(o.c.status == status.value)
        if after_id is not None:
            query = query.where(o.c.id > after_id)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [_entry(row) for row in rows]

    def get_outbox_event(self, event_id: str) -> OutboxEntry | None:
        with self._db.read() as conn:
            row = conn.execute(select(o).where(o.c.id == event_id)).first()
        return _entry(row) if row is not None else None


def _entry(row: Row[Any]) -> OutboxEntry:
    body = json.loads(row.payload)
    event = Event(
        id=row.id,
        type=EventType(row.type),
        created_at=as_utc(row.created_at),
        data=body["data"],
    )
    return OutboxEntry(
        event=event,
        attempts=int(row.attempts),
        delivered_to=frozenset(json.loads(row.delivered_to)),
        status=OutboxStatus(row.status),
        last_error=row.last_error,
        next_attempt_at=as_utc(row.next_attempt_at),
        sent_at=as_utc(row.sent_at) if row.sent_at is not None else None,
    )
