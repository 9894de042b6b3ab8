"""The events the wallet reports, and the delivery policy of its outbox. Pure: no SQL, no I/O.

An event is built from the record a write has just changed and stored by the store in the
SAME database transaction as that change (the transactional outbox): an event exists if and
only if its change committed. The delivery worker (wallet_service.notifier) sends it later,
at least once; every message carries the event id so a receiver can de-duplicate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from wallet_service.ids import uuid7
from wallet_service.models import Decision, Transaction, TxStatus, TxType, User, iso_utc
from wallet_service.money import ISO_4217_EXPONENTS, format_minor


class EventType(StrEnum):
    TRANSACTION_FLAGGED = "transaction.flagged"
    TRANSACTION_BLOCKED = "transaction.blocked"
    TRANSACTION_REVIEWED = "transaction.reviewed"
    TRANSACTION_REVERSED = "transaction.reversed"
    USER_FROZEN = "user.frozen"
    TRANSFER_RECEIVED = "transfer.received"


# The fraud team is alerted by email of these; every event goes to the webhooks.
FRAUD_ALERT_TYPES = frozenset({EventType.TRANSACTION_FLAGGED, EventType.TRANSACTION_BLOCKED})


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True)
class Event:
    """One event, as stored in the outbox and sent (`body()`) to every channel."""

    id: str
    type: EventType
    created_at: datetime
    data: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "created_at": iso_utc(self.created_at),
            "data": self.data,
        }


@dataclass(frozen=True)
class OutboxEntry:
    """An event claimed from the outbox by one worker, with its delivery state."""

    event: Event
    attempts: int  # including the one this claim is for
    delivered_to: frozenset[str] = field(default_factory=frozenset)
    status: OutboxStatus = OutboxStatus.PENDING
    last_error: str | None = None
    next_attempt_at: datetime | None = None  # when a pending event is due
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Settlement:
    """The outcome of one delivery attempt of a claimed event: `status` (SENT, DEAD, or
    PENDING again, due at `next_attempt_at`), the destinations that took it so far, the
    last error."""

    event_id: str
    delivered_to: frozenset[str]
    status: OutboxStatus
    next_attempt_at: datetime | None = None
    error: str | None = None


def movement_events(tx: Transaction) -> list[Event]:
    """What a newly recorded movement reports (nothing for a plain allowed movement)."""
    found: list[EventType] = []
    if tx.status is TxStatus.REJECTED:
        found.append(EventType.TRANSACTION_BLOCKED)
    elif tx.flagged:
        found.append(EventType.TRANSACTION_FLAGGED)
    if tx.status is TxStatus.COMPLETED and tx.type is TxType.REVERSAL:
        found.append(EventType.TRANSACTION_REVERSED)
    if tx.status is TxStatus.COMPLETED and tx.type is TxType.TRANSFER:
        found.append(EventType.TRANSFER_RECEIVED)
    return [_event(kind, tx.created_at, transaction_data(tx)) for kind in found]


def review_event(tx: Transaction) -> Event:
    """A flagged transaction was resolved by an admin (`tx` as it stands after the review)."""
    return _event(
        EventType.TRANSACTION_REVIEWED, tx.reviewed_at or tx.created_at, transaction_data(tx)
    )


def freeze_event(user: User) -> Event:
    """An admin froze `user` (as it stands after the freeze)."""
    data = {
        "user_id": user.id,
        "username": user.username,
        "frozen_by": user.frozen_by,
        "reason": user.frozen_reason,
        "frozen_at": iso_utc(user.frozen_at),
    }
    return _event(EventType.USER_FROZEN, user.frozen_at or user.created_at, data)


def transaction_data(tx: Transaction) -> dict[str, Any]:
    verdict = tx.verdict
    exponent = ISO_4217_EXPONENTS.get(tx.currency, 0)
    return {
        "transaction_id": tx.id,
        "transaction_type": tx.type.value,
        "status": tx.status.value,
        "amount": format_minor(tx.amount_minor, exponent),
        "amount_minor": tx.amount_minor,
        "currency": tx.currency,
        "from_user_id": tx.from_user_id,
        "from_username": tx.from_username,
        "to_user_id": tx.to_user_id,
        "to_username": tx.to_username,
        "initiated_by": tx.initiated_by,
        "created_at": iso_utc(tx.created_at),
        "fraud_decision": verdict.decision.value if verdict else Decision.ALLOW.value,
        "fraud_score": verdict.score if verdict else 0,
        "fraud_reasons": [
            {"rule_id": r.rule_id, "description": r.description}
            for r in (verdict.reasons if verdict else ())
        ],
        "rules_version": verdict.rules_version if verdict else "",
        "review_status": tx.review_status.value if tx.review_status else None,
        "reviewed_by": tx.reviewed_by,
        "review_note": tx.review_note,
        "reverses_transaction_id": tx.reverses_transaction_id,
    }


def _event(kind: EventType, at: datetime, data: dict[str, Any]) -> Event:
    return Event(id=uuid7(), type=kind, created_at=at, data=data)


# -- delivery policy -------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, then the dead letter."""

    max_attempts: int = 8
    base_seconds: float = 2.0
    cap_seconds: float = 3600.0

    def next_attempt(
        self, *, attempts: int, now: datetime, rand: random.Random | None = None
    ) -> datetime | None:
        """When to try again after `attempts` failed attempts; None: dead-letter it."""
        if attempts >= self.max_attempts:
            return None
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** (attempts - 1))
        # Full jitter (at least half the ceiling): receivers that come back are not hit by
        # every replica's retries at the same instant.
        delay = ceiling * (0.5 + 0.5 * (rand or random).random())
        return now + timedelta(seconds=delay)
