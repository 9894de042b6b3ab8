"""The caller's own account: balances, history, closing it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from wallet.v1 import wallet_pb2

from gateway import schemas as s
from gateway.deps import AuthCaller, Limit, ServicesDep, TransactionId
from gateway.routes import wallet_router

router = wallet_router("account")


@router.get("/balance")
async def balance(
    caller: AuthCaller, svc: ServicesDep, currency: Annotated[str, Query(max_length=16)] = "USD"
) -> s.BalanceOut:
    request = wallet_pb2.GetBalanceRequest(currency=currency)
    return s.BalanceOut.from_proto(
        await svc.wallet.call(svc.wallet.stub.GetBalance, request, caller)
    )


@router.get("/balances")
async def balances(caller: AuthCaller, svc: ServicesDep) -> s.BalancesOut:
    request = wallet_pb2.ListBalancesRequest()
    reply = await svc.wallet.call(svc.wallet.stub.ListBalances, request, caller)
    return s.BalancesOut.from_proto(reply)


@router.get("/transactions")
async def transactions(
    caller: AuthCaller,
    svc: ServicesDep,
    limit: Limit = None,
    cursor: str = "",
    currency: str = "",
    tx_type: Annotated[str, Query(alias="type", description="deposit|withdrawal|...")] = "",
    since: Annotated[str, Query(description="RFC 3339, inclusive")] = "",
    until: Annotated[str, Query(description="RFC 3339, exclusive")] = "",
    include_deleted: Annotated[bool, Query(description="Admin only")] = False,
    username: Annotated[str, Query(description="Admin only: another user's history")] = "",
) -> s.TransactionListOut:
    request = wallet_pb2.ListTransactionsRequest(
        limit=limit or 0,
        cursor=cursor,
        currency=currency,
        type=tx_type,
        since=since,
        until=until,
        include_deleted=include_deleted,
        username=username,
    )
    reply = await svc.wallet.call(svc.wallet.stub.ListTransactions, request, caller)
    return s.TransactionListOut.from_proto(reply)


@router.get("/transactions/{transaction_id}")
async def transaction(
    transaction_id: TransactionId, caller: AuthCaller, svc: ServicesDep
) -> s.TransactionOut:
    request = wallet_pb2.GetTransactionRequest(transaction_id=transaction_id)
    reply = await svc.wallet.call(svc.wallet.stub.GetTransaction, request, caller)
    return s.TransactionOut.from_proto(reply)


@router.put("/me/email")
async def set_email(body: s.EmailIn, caller: AuthCaller, svc: ServicesDep) -> s.OwnUserResultOut:
    """Set your notification address (transfers you receive are mailed to it)."""
    request = wallet_pb2.SetEmailRequest(email=body.email)
    reply = await svc.wallet.call(svc.wallet.stub.SetEmail, request, caller)
    return s.OwnUserResultOut(msg="Email updated", user=s.OwnUserOut.from_proto(reply))


@router.delete("/me")
async def delete_me(caller: AuthCaller, svc: ServicesDep) -> s.UserResultOut:
    request = wallet_pb2.DeleteAccountRequest()
    reply = await svc.wallet.call(svc.wallet.stub.DeleteAccount, request, caller)
    return s.UserResultOut(msg="Account deleted", user=s.UserOut.from_proto(reply))
