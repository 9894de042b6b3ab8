"""Admin routes over the event outbox (issue 14): list events by status, count them, and
retry a dead one. Each calls the wallet's admin RPC (the wallet checks the token and the
role on every call); the shapes below are what the wire carries."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Self

from fastapi import Path, Query
from pydantic import BaseModel
from wallet.v1 import wallet_pb2

from gateway.deps import AuthCaller, Limit, ServicesDep
from gateway.routes import wallet_router

router = wallet_router("admin: notifications")

OutboxStatus = Literal["pending", "sent", "dead"]
EventId = Annotated[str, Path(min_length=1, max_length=64)]


class OutboxEventOut(BaseModel):
    id: str
    type: str
    status: OutboxStatus
    attempts: int
    created_at: str
    next_attempt_at: str | None
    sent_at: str | None
    last_error: str | None
    delivered_to: list[str]
    data: dict[str, Any]

    @classmethod
    def from_proto(cls, event: wallet_pb2.OutboxEvent) -> Self:
        return cls(
            id=event.id,
            type=event.type,
            status=event.status,  # type: ignore[arg-type]  # the wallet sends one of the three
            attempts=event.attempts,
            created_at=event.created_at,
            next_attempt_at=event.next_attempt_at or None,
            sent_at=event.sent_at or None,
            last_error=event.last_error or None,
            delivered_to=list(event.delivered_to),
            data=json.loads(event.data_json or "{}"),
        )


class OutboxEventListOut(BaseModel):
    events: list[OutboxEventOut]
    next_cursor: str | None


class OutboxCountsOut(BaseModel):
    pending: int
    sent: int
    dead: int


class OutboxRetryOut(BaseModel):
    msg: str
    event: OutboxEventOut


@router.get("/admin/notifications")
async def list_notifications(
    caller: AuthCaller,
    svc: ServicesDep,
    status: Annotated[OutboxStatus | None, Query(description="pending|sent|dead")] = None,
    limit: Limit = None,
    cursor: Annotated[str, Query(max_length=128)] = "",
) -> OutboxEventListOut:
    """The outbox's events, oldest first, optionally of one status."""
    request = wallet_pb2.ListOutboxEventsRequest(
        status=status or "", limit=limit or 0, cursor=cursor
    )
    reply = await svc.wallet.call(svc.wallet.stub.ListOutboxEvents, request, caller)
    return OutboxEventListOut(
        events=[OutboxEventOut.from_proto(e) for e in reply.events],
        next_cursor=reply.next_cursor or None,
    )


@router.get("/admin/notifications/counts")
async def notification_counts(caller: AuthCaller, svc: ServicesDep) -> OutboxCountsOut:
    request = wallet_pb2.OutboxCountsRequest()
    reply = await svc.wallet.call(svc.wallet.stub.OutboxCounts, request, caller)
    return OutboxCountsOut(pending=reply.pending, sent=reply.sent, dead=reply.dead)


@router.post("/admin/notifications/{event_id}/retry")
async def retry_notification(
    event_id: EventId, caller: AuthCaller, svc: ServicesDep
) -> OutboxRetryOut:
    """Put a dead event back to pending; the delivery worker sends it again (404 when no
    event has that id, 422 `event_not_dead` when it is not dead)."""
    request = wallet_pb2.RetryDeadEventRequest(event_id=event_id)
    reply = await svc.wallet.call(svc.wallet.stub.RetryDeadEvent, request, caller)
    return OutboxRetryOut(msg="Event queued for delivery", event=OutboxEventOut.from_proto(reply))
