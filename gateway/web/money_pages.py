"""Deposit, withdraw, transfer: each rendered form carries a fresh idempotency key, so a
double click or a re-POST moves money once (the wallet replays the first answer), and a
success redirects (303) to the transaction's page, so a reload does not resubmit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from wallet.v1 import wallet_pb2

from gateway.errors import ApiError
from gateway.web.auth_pages import field_of
from gateway.web.pages import Page, UserPage, WebRoute, attempt, new_idempotency_key, redirect

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@dataclass(frozen=True)
class Movement:
    title: str
    button: str
    explain: str


MOVEMENTS = {
    "deposit": Movement("Deposit", "Deposit", "Money enters your wallet from outside."),
    "withdraw": Movement(
        "Withdraw", "Withdraw", "Money leaves your wallet; you cannot take out more than you have."
    ),
    "transfer": Movement(
        "Transfer", "Transfer", "Send money to another user of the wallet, by username."
    ),
}
# The wallet's answer may be lost (a timeout): the same key makes the retry safe.
_RETRY_SAME_KEY = {503, 504}


def _form(
    page: Page,
    kind: str,
    values: dict[str, str],
    error: ApiError | None = None,
    idempotency_key: str = "",
) -> Response:
    return page.render(
        "movement.html",
        error.status if error else 200,
        kind=kind,
        m=MOVEMENTS[kind],
        values=values,
        error=error,
        error_field=field_of(error),
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


def _blank() -> dict[str, str]:
    return {"amount": "", "currency": "USD", "to_username": ""}


def _request(kind: str, fields: dict[str, str], values: dict[str, str]) -> Any:
    key = fields.get("idempotency_key", "")
    if kind == "transfer":
        return wallet_pb2.TransferRequest(
            to_username=values["to_username"],
            amount=values["amount"],
            currency=values["currency"],
            idempotency_key=key,
        )
    message = wallet_pb2.DepositRequest if kind == "deposit" else wallet_pb2.WithdrawRequest
    return message(amount=values["amount"], currency=values["currency"], idempotency_key=key)


async def _move(page: Page, kind: str) -> Response:
    fields = await page.form()
    values = {name: fields.get(name, "").strip() for name in ("amount", "currency", "to_username")}
    rpc = {
        "deposit": page.stub.Deposit,
        "withdraw": page.stub.Withdraw,
        "transfer": page.stub.Transfer,
    }[kind]
    reply = await attempt(page.call(rpc, _request(kind, fields, values)))
    if isinstance(reply, ApiError):
        same_key = fields.get("idempotency_key", "") if reply.status in _RETRY_SAME_KEY else ""
        return _form(page, kind, values, reply, same_key)
    return redirect(f"/app/transactions/{reply.transaction.id}?notice={kind}")


@router.get("/app/deposit")
async def deposit_form(page: UserPage) -> Response:
    return _form(page, "deposit", _blank())


@router.post("/app/deposit")
async def deposit(page: UserPage) -> Response:
    return await _move(page, "deposit")


@router.get("/app/withdraw")
async def withdraw_form(page: UserPage) -> Response:
    return _form(page, "withdraw", _blank())


@router.post("/app/withdraw")
async def withdraw(page: UserPage) -> Response:
    return await _move(page, "withdraw")


@router.get("/app/transfer")
async def transfer_form(page: UserPage) -> Response:
    return _form(page, "transfer", _blank())


@router.post("/app/transfer")
async def transfer(page: UserPage) -> Response:
    return await _move(page, "transfer")
