"""Deposit, withdraw, transfer: each rendered form carries a fresh idempotency key, so a
double click or a re-POST moves money once (the wallet replays the first answer), and a
success redirects (303) to the transaction's page, so a reload does not resubmit."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response
from wallet.v1 import wallet_pb2
from wallet.v1.wallet_pb2 import MovementResponse

from gateway.errors import ApiError
from gateway.web.pages import (
    Page,
    UserPage,
    WebRoute,
    attempt,
    field_of,
    key_after,
    new_idempotency_key,
    redirect,
)

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


def _send(page: Page, kind: str, key: str, values: dict[str, str]) -> Awaitable[MovementResponse]:
    amount, currency = values["amount"], values["currency"]
    if kind == "transfer":
        transfer = wallet_pb2.TransferRequest(
            to_username=values["to_username"],
            amount=amount,
            currency=currency,
            idempotency_key=key,
        )
        return page.call(page.stub.Transfer, transfer)
    if kind == "withdraw":
        withdrawal = wallet_pb2.WithdrawRequest(
            amount=amount, currency=currency, idempotency_key=key
        )
        return page.call(page.stub.Withdraw, withdrawal)
    deposit = wallet_pb2.DepositRequest(amount=amount, currency=currency, idempotency_key=key)
    return page.call(page.stub.Deposit, deposit)


async def _move(page: Page, kind: str) -> Response:
    fields = await page.form()
    values = {name: fields.get(name, "").strip() for name in ("amount", "currency", "to_username")}
    key = fields.get("idempotency_key", "")
    reply = await attempt(_send(page, kind, key, values))
    if isinstance(reply, ApiError):
        return _form(page, kind, values, reply, key_after(reply, key))
    return redirect(f"/app/transactions/{reply.transaction.id}?notice={kind}")


def _add_routes(kind: str) -> None:
    """GET /app/<kind> renders the form, POST /app/<kind> moves the money."""

    async def show(page: UserPage) -> Response:
        return _form(page, kind, _blank())

    async def move(page: UserPage) -> Response:
        return await _move(page, kind)

    router.add_api_route(f"/app/{kind}", show, methods=["GET"], name=f"{kind}_form")
    router.add_api_route(f"/app/{kind}", move, methods=["POST"], name=kind)


for _kind in MOVEMENTS:
    _add_routes(_kind)
