"""Admin use cases over the event outbox: list its events by status (cursor-paginated),
count them by status, and put a dead event back to pending. Plain Python over the store
contract: no gRPC, no SQL. Every call checks the caller's role first, so a normal user
learns nothing (not even whether an event id exists)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from common.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from wallet_service.cursors import decode_cursor, encode_cursor
from wallet_service.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from wallet_service.events import OutboxEntry, OutboxStatus
from wallet_service.models import Role, User, utc_now
from wallet_service.store_contract import WalletStore

log = logging.getLogger(__name__)

_CURSOR_PREFIX = "ob1:"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class OutboxPage:
    events: list[OutboxEntry]
    next_cursor: str  # empty on the last page


class OutboxAdmin:
    def __init__(self, store: WalletStore, clock: Callable[[], datetime] = utc_now) -> None:
        self.store, self.clock = store, clock

    def list_events(self, caller: User, *, status: str, limit: int, cursor: str) -> OutboxPage:
        _require_admin(caller)
        if limit < 0:
            raise InvalidArgument("invalid_limit", "limit must not be negative")
        size = min(limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        # One row more than the page holds tells whether another page exists.
        rows = self.store.list_outbox(
            status=_status(status) if status else None,
            limit=size + 1,
            after_id=decode_cursor(_CURSOR_PREFIX, cursor),
        )
        page, more = rows[:size], len(rows) > size
        return OutboxPage(
            page, encode_cursor(_CURSOR_PREFIX, page[-1].event.id) if more and page else ""
        )

    def counts(self, caller: User) -> dict[OutboxStatus, int]:
        _require_admin(caller)
        return self.store.outbox_counts()

    def retry_dead(self, caller: User, event_id: str) -> OutboxEntry:
        """Put a dead event back to pending, due now; the event as it stands after."""
        _require_admin(caller)
        if _UUID.fullmatch(event_id or "") and self.store.retry_dead_event(
            event_id=event_id, now=self.clock()
        ):
            log.info("dead event %s put back to pending by %s", event_id, caller.id)
            found = self.store.get_outbox_event(event_id)
            assert found is not None  # events are never deleted
            return found
        existing = (
            self.store.get_outbox_event(event_id) if _UUID.fullmatch(event_id or "") else None
        )
        if existing is None:
            raise NotFound("event_not_found", "Event not found")
        raise FailedPrecondition(
            "event_not_dead", f"Only a dead event can be retried (this one is {existing.status})"
        )


def _require_admin(caller: User) -> None:
    if caller.role is not Role.ADMIN:
        raise PermissionDenied("admin_required", "Admin role required")


def _status(value: str) -> OutboxStatus:
    try:
        return OutboxStatus(value)
    except ValueError as exc:
        raise InvalidArgument("invalid_status", "Expected pending, sent or dead") from exc
