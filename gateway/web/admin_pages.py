"""Admin pages: the flagged queue, reviews, reversals, freezes, and the fraud lists and
notifications (the rule sets are gateway.web.rule_pages). Every action is an admin RPC:
the wallet checks the role on each call, so a normal user gets its 403 as a page (the menu
is only a convenience)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from fraud.v1 import fraud_pb2
from wallet.v1 import wallet_pb2

from gateway.errors import ApiError
from gateway.web.account_pages import TransactionId, page_links, transaction_page
from gateway.web.pages import Page, UserPage, WebRoute, attempt, field_of, key_after, redirect

router = APIRouter(route_class=WebRoute, include_in_schema=False)

FLAGGED_PATH = "/app/admin/flagged"


def _int(text: str, default: int = 0) -> int:
    """A number field; what is not a number goes to the wallet as -1, so the wallet's own
    message names the problem."""
    text = text.strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        return -1


# --- the flagged queue and user freezes ------------------------------------------------------


async def _flagged(
    page: Page,
    status: str,
    cursor: str,
    error: ApiError | None = None,
    error_form: str = "",
    values: dict[str, str] | None = None,
) -> Response:
    request = wallet_pb2.ListFlaggedTransactionsRequest(
        cursor=cursor, review_status="" if status == "all" else "pending"
    )
    reply = await page.call(page.stub.ListFlaggedTransactions, request)
    return page.render(
        "admin_flagged.html",
        error.status if error else 200,
        status=status,
        table_id="flagged",
        rows=list(reply.transactions),
        error=error,
        error_form=error_form,
        error_field=field_of(error),
        values=values or {},
        **page_links(FLAGGED_PATH, {"status": status}, cursor, reply.next_cursor),
    )


@router.get(FLAGGED_PATH)
async def flagged(
    page: UserPage,
    status: Literal["pending", "all"] = "pending",
    cursor: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    return await _flagged(page, status, cursor)


@router.post("/app/admin/users/freeze")
async def freeze_user(page: UserPage) -> Response:
    fields = await page.form()
    username, reason = fields.get("username", ""), fields.get("reason", "")
    request = wallet_pb2.FreezeUserRequest(username=username, reason=reason)
    reply = await attempt(page.call(page.stub.FreezeUser, request))
    if isinstance(reply, ApiError):
        values = {"username": username, "reason": reason}
        return await _flagged(page, "pending", "", reply, "freeze", values)
    return redirect(f"{FLAGGED_PATH}?notice=frozen")


@router.post("/app/admin/users/unfreeze")
async def unfreeze_user(page: UserPage) -> Response:
    fields = await page.form()
    username = fields.get("username", "")
    request = wallet_pb2.UnfreezeUserRequest(username=username)
    reply = await attempt(page.call(page.stub.UnfreezeUser, request))
    if isinstance(reply, ApiError):
        return await _flagged(page, "pending", "", reply, "unfreeze", {"username": username})
    return redirect(f"{FLAGGED_PATH}?notice=unfrozen")


# --- one transaction: review, reverse ------------------------------------------------------------


@router.post("/app/admin/transactions/{tx_id}/review")
async def review(tx_id: TransactionId, page: UserPage) -> Response:
    fields = await page.form()
    request = wallet_pb2.ReviewTransactionRequest(
        transaction_id=tx_id,
        resolution=fields.get("resolution", ""),
        note=fields.get("note", ""),
        freeze=fields.get("freeze", "") == "on",
        snooze_days=_int(fields.get("snooze_days", "")),
    )
    reply = await attempt(page.call(page.stub.ReviewTransaction, request))
    if isinstance(reply, ApiError):
        return await transaction_page(page, tx_id, error=reply, error_form="review")
    return redirect(f"/app/transactions/{quote(tx_id)}?notice=reviewed")


@router.post("/app/admin/transactions/{tx_id}/reverse")
async def reverse(tx_id: TransactionId, page: UserPage) -> Response:
    fields = await page.form()
    key = fields.get("idempotency_key", "")
    request = wallet_pb2.ReverseTransactionRequest(
        transaction_id=tx_id, reason=fields.get("reason", ""), idempotency_key=key
    )
    reply = await attempt(page.call(page.stub.ReverseTransaction, request))
    if isinstance(reply, ApiError):
        return await transaction_page(
            page, tx_id, error=reply, error_form="reverse", idempotency_key=key_after(reply, key)
        )
    return redirect(f"/app/transactions/{quote(reply.transaction.id)}?notice=reversed")


# --- fraud lists ----------------------------------------------------------------------------------


async def _lists(
    page: Page, error: ApiError | None = None, values: dict[str, str] | None = None
) -> Response:
    reply = await page.call(page.svc.wallet.fraud_admin.ListEntries, fraud_pb2.ListEntriesRequest())
    return page.render(
        "admin_lists.html",
        error.status if error else 200,
        entries=list(reply.entries),
        error=error,
        error_field=field_of(error),
        values=values or {"list": "block", "username": "", "rules": "", "note": ""},
    )


@router.get("/app/admin/lists")
async def lists(page: UserPage) -> Response:
    return await _lists(page)


@router.post("/app/admin/lists/add")
async def add_list_entry(page: UserPage) -> Response:
    fields = await page.form()
    values = {name: fields.get(name, "") for name in ("list", "username", "rules", "note")}
    rules = [rule.strip() for rule in values["rules"].split(",") if rule.strip()]
    request = fraud_pb2.AddListEntryRequest(
        list=values["list"], username=values["username"], rules=rules, note=values["note"]
    )
    reply = await attempt(page.call(page.svc.wallet.fraud_admin.AddListEntry, request))
    if isinstance(reply, ApiError):
        return await _lists(page, reply, values)
    return redirect("/app/admin/lists?notice=list_added")


@router.post("/app/admin/lists/remove")
async def remove_list_entry(page: UserPage) -> Response:
    fields = await page.form()
    request = fraud_pb2.RemoveListEntryRequest(
        list=fields.get("list", ""), username=fields.get("username", "")
    )
    await page.call(page.svc.wallet.fraud_admin.RemoveListEntry, request)
    return redirect("/app/admin/lists?notice=list_removed")


# --- notifications (the event outbox) -------------------------------------------------------------


@router.get("/app/admin/notifications")
async def notifications(
    page: UserPage,
    status: Literal["", "pending", "sent", "dead"] = "",
    cursor: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    counts = await page.call(page.stub.OutboxCounts, wallet_pb2.OutboxCountsRequest())
    request = wallet_pb2.ListOutboxEventsRequest(status=status, cursor=cursor)
    reply = await page.call(page.stub.ListOutboxEvents, request)
    return page.render(
        "admin_notifications.html",
        counts=counts,
        status=status,
        events=list(reply.events),
        **page_links("/app/admin/notifications", {"status": status}, cursor, reply.next_cursor),
    )


@router.post("/app/admin/notifications/{event_id}/retry")
async def retry_notification(
    event_id: Annotated[str, Path(min_length=1, max_length=64)], page: UserPage
) -> Response:
    await page.form()
    await page.call(page.stub.RetryDeadEvent, wallet_pb2.RetryDeadEventRequest(event_id=event_id))
    return redirect("/app/admin/notifications?notice=retried")
