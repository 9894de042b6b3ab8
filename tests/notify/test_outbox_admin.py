"""Admin visibility and control of the outbox through the real interfaces, on both stores:
the gRPC admin RPCs (ListOutboxEvents, OutboxCounts, RetryDeadEvent) and the gateway's
/admin/notifications routes, over a wallet of its own. End to end: a webhook that fails
dead-letters the event (one attempt allowed), the admin retries it through REST, and the
wallet's worker delivers it with the same Webhook-Id."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
from wallet.v1 import wallet_pb2

from common.processes import wait_for
from tests.support import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    StartGateway,
    admin_auth,
    assert_error,
    expect_error,
    new_user,
)
from tests.support.notify import WebhookReceiver, store_dead_events, store_events, webhook_env
from wallet_service.models import utc_now

HANG_GUARD = 60.0


def rest_admin(api: httpx.Client) -> dict[str, str]:
    credentials = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    token = api.post("/login", json=credentials).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def all_pages(api: httpx.Client, auth: dict[str, str], **params: Any) -> list[list[str]]:
    """The ids on each page of GET /admin/notifications, following next_cursor."""
    pages, cursor = [], ""
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get("/admin/notifications", params=query, headers=auth)
        assert response.status_code == 200, response.text
        pages.append([e["id"] for e in response.json()["events"]])
        cursor = response.json()["next_cursor"]
        if not cursor:
            return pages


def test_events_are_listed_by_status_paginated_and_counted(
    make_wallet: Any, fraud_addr: str, start_gateway: StartGateway
) -> None:
    running, stub = make_wallet(fraud_addr)
    pending = [e.id for e in store_events(running.store, 3, utc_now())]
    dead = [e.id for e in store_dead_events(running.store, 2, error="hook: HTTP 500")]
    admin = admin_auth(stub)
    # gRPC: counts, and the dead ones one per page, oldest first.
    counts = stub.OutboxCounts(wallet_pb2.OutboxCountsRequest(), metadata=admin)
    assert (counts.pending, counts.sent, counts.dead) == (3, 0, 2)
    first = stub.ListOutboxEvents(
        wallet_pb2.ListOutboxEventsRequest(status="dead", limit=1), metadata=admin
    )
    assert [e.id for e in first.events] == dead[:1] and first.next_cursor
    assert first.events[0].last_error == "hook: HTTP 500"
    assert first.events[0].type == "user.frozen" and first.events[0].status == "dead"
    second = stub.ListOutboxEvents(
        wallet_pb2.ListOutboxEventsRequest(status="dead", limit=1, cursor=first.next_cursor),
        metadata=admin,
    )
    assert [e.id for e in second.events] == dead[1:] and not second.next_cursor
    # REST: the same outbox through the gateway.
    with httpx.Client(base_url=start_gateway(running.addr), timeout=HANG_GUARD) as api:
        auth = rest_admin(api)
        assert all_pages(api, auth, status="pending", limit=2) == [pending[:2], pending[2:]]
        assert all_pages(api, auth, status="dead") == [dead]
        assert all_pages(api, auth) == [sorted(pending + dead)]
        response = api.get("/admin/notifications/counts", headers=auth)
        assert response.json() == {"pending": 3, "sent": 0, "dead": 2}
        listed = api.get("/admin/notifications", params={"status": "dead"}, headers=auth)
        event = listed.json()["events"][0]
        assert event["data"] == {"n": 0} and event["attempts"] == 8
        bad = api.get("/admin/notifications", params={"status": "lost"}, headers=auth)
        assert bad.status_code == 400, bad.text


def test_bad_arguments_are_clear_errors(make_wallet: Any, fraud_addr: str) -> None:
    running, stub = make_wallet(fraud_addr)
    [pending] = store_events(running.store, 1, utc_now())
    admin = admin_auth(stub)
    expect_error(
        lambda: stub.ListOutboxEvents(
            wallet_pb2.ListOutboxEventsRequest(status="lost"), metadata=admin
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_status",
    )
    expect_error(
        lambda: stub.ListOutboxEvents(
            wallet_pb2.ListOutboxEventsRequest(cursor="not-a-cursor"), metadata=admin
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_cursor",
    )
    for unknown in (str(uuid.uuid4()), "not-an-id"):
        expect_error(
            lambda: stub.RetryDeadEvent(
                wallet_pb2.RetryDeadEventRequest(event_id=unknown),  # noqa: B023
                metadata=admin,
            ),
            grpc.StatusCode.NOT_FOUND,
            "event_not_found",
        )
    expect_error(
        lambda: stub.RetryDeadEvent(
            wallet_pb2.RetryDeadEventRequest(event_id=pending.id), metadata=admin
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "event_not_dead",
    )


def test_a_dead_webhook_is_resent_after_an_admin_retry_through_rest(
    make_wallet: Any,
    fraud_addr: str,
    start_gateway: StartGateway,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    receiver.statuses = [500]  # the receiver is broken at first
    running, stub = make_wallet(
        fraud_addr,
        NOTIFY_MAX_ATTEMPTS="1",
        **webhook_env(receiver.url, "s3cret", tmp_path / "mail"),
    )
    victim, _ = new_user(stub)
    with httpx.Client(base_url=start_gateway(running.addr), timeout=HANG_GUARD) as api:
        auth = rest_admin(api)
        frozen = api.post(f"/admin/users/{victim}/freeze", json={"reason": "x"}, headers=auth)
        assert frozen.status_code == 200, frozen.text

        def dead() -> list[dict[str, Any]]:
            found = api.get("/admin/notifications", params={"status": "dead"}, headers=auth)
            return list(found.json()["events"])

        assert wait_for(lambda: bool(dead()), HANG_GUARD)
        [event] = dead()
        assert event["type"] == "user.frozen" and event["data"]["username"] == victim
        assert "500" in event["last_error"]
        retried = api.post(f"/admin/notifications/{event['id']}/retry", headers=auth)
        assert retried.status_code == 200, retried.text
        assert retried.json()["event"]["status"] == "pending"
        assert wait_for(lambda: receiver.answered(200) != [], HANG_GUARD)
        assert wait_for(
            lambda: api.get("/admin/notifications/counts", headers=auth).json()["sent"] == 1,
            HANG_GUARD,
        )
        assert [r.headers["Webhook-Id"] for r in receiver.got] == [event["id"]] * 2
        again = api.post(f"/admin/notifications/{event['id']}/retry", headers=auth)
        assert_error(again, 422, "event_not_dead")
        missing = api.post(f"/admin/notifications/{uuid.uuid4()}/retry", headers=auth)
        assert_error(missing, 404, "event_not_found")
