"""The caller's history (filters and cursor pagination as the API has them), one
transaction's page, changing the password and closing the account."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from wallet.v1 import wallet_pb2

from gateway.deps import Limit
from gateway.errors import ApiError
from gateway.web.auth_pages import logged_in
from gateway.web.money_pages import MOVEMENTS
from gateway.web.pages import (
    LOGIN_PATH,
    Page,
    UserPage,
    WebRoute,
    attempt,
    field_of,
    new_idempotency_key,
    redirect,
)
from gateway.web.session import end_session

router = APIRouter(route_class=WebRoute, include_in_schema=False)

TX_TYPES = [
    ("", "Any"),
    ("deposit", "Deposit"),
    ("withdrawal", "Withdrawal"),
    ("transfer", "Transfer"),
    ("reversal", "Reversal"),
]
Text = Annotated[str, Query(max_length=128)]
TransactionId = Annotated[str, Path(min_length=1, max_length=128)]


def day_start(text: str, *, next_day: bool = False) -> str:
    """A date input's 'YYYY-MM-DD' as the RFC 3339 instant the API takes (the start of that
    UTC day, or of the next one for an inclusive end). Anything else goes to the wallet as
    typed, so its own message says what is wrong."""
    if not text:
        return ""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return text
    if next_day:
        day += timedelta(days=1)
    return f"{day.isoformat()}T00:00:00Z"


def page_links(path: str, filters: dict[str, str], cursor: str, next_cursor: str) -> dict[str, str]:
    """The next page's link (the same filters and the API's cursor) and, past the first
    page, the first page's."""
    kept = {name: value for name, value in filters.items() if value}
    return {
        "next_url": f"{path}?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else "",
        "first_url": (f"{path}?{urlencode(kept)}" if kept else path) if cursor else "",
    }


@router.get("/app/transactions")
async def history(
    page: UserPage,
    currency: Text = "",
    tx_type: Annotated[str, Query(alias="type", max_length=32)] = "",
    since: Text = "",
    until: Text = "",
    cursor: Annotated[str, Query(max_length=512)] = "",
    limit: Limit = None,
    username: Annotated[str, Query(max_length=128, description="Admin only")] = "",
) -> Response:
    filters = {"currency": currency, "type": tx_type, "since": since, "until": until}
    if username:
        filters["username"] = username
    if limit:
        filters["limit"] = str(limit)
    request = wallet_pb2.ListTransactionsRequest(
        limit=limit or 0,
        cursor=cursor,
        currency=currency,
        type=tx_type,
        since=day_start(since),
        until=day_start(until, next_day=True),
        username=username,
    )
    reply = await attempt(page.call(page.stub.ListTransactions, request))
    error = reply if isinstance(reply, ApiError) else None
    rows = [] if isinstance(reply, ApiError) else list(reply.transactions)
    next_cursor = "" if isinstance(reply, ApiError) else reply.next_cursor
    return page.render(
        "transactions.html",
        error.status if error else 200,
        filters=filters,
        types=TX_TYPES,
        error=error,
        error_field=field_of(error),
        table_id="transactions",
        rows=rows,
        **page_links("/app/transactions", filters, cursor, next_cursor),
    )


async def transaction_page(
    page: Page,
    tx_id: str,
    *,
    error: ApiError | None = None,
    error_form: str = "",
    idempotency_key: str = "",
) -> Response:
    """One transaction (with its fraud assessment and the review forms for admins)."""
    tx = await page.call(
        page.stub.GetTransaction, wallet_pb2.GetTransactionRequest(transaction_id=tx_id)
    )
    balance = None
    if page.request.query_params.get("notice") in MOVEMENTS:
        request = wallet_pb2.GetBalanceRequest(currency=tx.currency)
        balance = await page.call(page.stub.GetBalance, request)
    return page.render(
        "transaction.html",
        error.status if error else 200,
        tx=tx,
        balance=balance,
        error=error,
        error_form=error_form,
        error_field=field_of(error),
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


@router.get("/app/transactions/{tx_id}")
async def transaction(tx_id: TransactionId, page: UserPage) -> Response:
    return await transaction_page(page, tx_id)


# --- the account --------------------------------------------------------------------------------


def _account(page: Page, error: ApiError | None = None, error_form: str = "") -> Response:
    fields = {"invalid_credentials": "current_password", "weak_password": "new_password"}
    return page.render(
        "account.html",
        error.status if error else 200,
        error=error,
        error_form=error_form,
        error_field=fields.get(error.code, "") if error else "",
    )


@router.get("/app/account")
async def account(page: UserPage) -> Response:
    return _account(page)


@router.post("/app/account/password")
async def change_password(page: UserPage) -> Response:
    """The wallet revokes every older token and answers a new one: the session moves to it."""
    fields = await page.form()
    request = wallet_pb2.ChangePasswordRequest(
        current_password=fields.get("current_password", ""),
        new_password=fields.get("new_password", ""),
    )
    # A wrong current password is the wallet's 401: shown here, not a lost session.
    reply = await attempt(page.call(page.stub.ChangePassword, request), expired_session=False)
    if isinstance(reply, ApiError):
        return _account(page, reply, "password")
    return logged_in(
        page, "/app/account?notice=password_changed", reply, is_admin=page.user.is_admin
    )


@router.post("/app/account/delete")
async def delete_account(page: UserPage) -> Response:
    await page.form()
    reply = await attempt(page.call(page.stub.DeleteAccount, wallet_pb2.DeleteAccountRequest()))
    if isinstance(reply, ApiError):
        return _account(page, reply, "delete")
    response = redirect(f"{LOGIN_PATH}?notice=account_deleted")
    end_session(response)
    return response
