"""Admin only (the wallet checks the role on every call): the fraud review queue,
reversals, deletions and freezes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from wallet.v1 import wallet_pb2

from gateway import schemas as s
from gateway.deps import AuthCaller, IdempotencyKey, Limit, ServicesDep, TransactionId, Username
from gateway.routes import wallet_router

router = wallet_router("admin")


@router.get("/admin/flagged")
async def flagged(
    caller: AuthCaller,
    svc: ServicesDep,
    limit: Limit = None,
    cursor: str = "",
    review_status: Annotated[str, Query(description="pending|cleared|confirmed_fraud")] = "",
    include_deleted: bool = False,
) -> s.FlaggedListOut:
    request = wallet_pb2.ListFlaggedTransactionsRequest(
        limit=limit or 0,
        cursor=cursor,
        review_status=review_status,
        include_deleted=include_deleted,
    )
    reply = await svc.wallet.call(svc.wallet.stub.ListFlaggedTransactions, request, caller)
    return s.FlaggedListOut.from_proto(reply)


@router.post("/admin/transactions/{transaction_id}/review")
async def review(
    transaction_id: TransactionId, body: s.ReviewIn, caller: AuthCaller, svc: ServicesDep
) -> s.AdminTransactionResultOut:
    request = wallet_pb2.ReviewTransactionRequest(
        transaction_id=transaction_id,
        resolution=body.resolution,
        note=body.note,
        freeze=body.freeze,
        snooze_days=body.snooze_days,
    )
    reply = await svc.wallet.call(svc.wallet.stub.ReviewTransaction, request, caller)
    return s.AdminTransactionResultOut(
        msg="Review recorded", transaction=s.AdminTransactionOut.from_proto(reply)
    )


@router.post("/admin/transactions/{transaction_id}/reverse", status_code=201)
async def reverse(
    transaction_id: TransactionId,
    body: s.ReverseIn,
    caller: AuthCaller,
    svc: ServicesDep,
    idempotency_key: IdempotencyKey = "",
) -> s.MovementOut:
    request = wallet_pb2.ReverseTransactionRequest(
        transaction_id=transaction_id, reason=body.reason, idempotency_key=idempotency_key
    )
    reply = await svc.wallet.call(svc.wallet.stub.ReverseTransaction, request, caller)
    return s.MovementOut.from_proto("Transaction reversed", reply)


@router.delete("/admin/transactions/{transaction_id}")
async def delete_transaction(
    transaction_id: TransactionId, caller: AuthCaller, svc: ServicesDep
) -> s.AdminTransactionResultOut:
    request = wallet_pb2.DeleteTransactionRequest(transaction_id=transaction_id)
    reply = await svc.wallet.call(svc.wallet.stub.DeleteTransaction, request, caller)
    return s.AdminTransactionResultOut(
        msg="Transaction deleted", transaction=s.AdminTransactionOut.from_proto(reply)
    )


@router.delete("/admin/users/{username}")
async def delete_user(username: Username, caller: AuthCaller, svc: ServicesDep) -> s.UserResultOut:
    request = wallet_pb2.DeleteUserRequest(username=username)
    reply = await svc.wallet.call(svc.wallet.stub.DeleteUser, request, caller)
    return s.UserResultOut(msg="User deleted", user=s.UserOut.from_proto(reply))


@router.post("/admin/users/{username}/freeze")
async def freeze_user(
    username: Username, body: s.FreezeIn, caller: AuthCaller, svc: ServicesDep
) -> s.AdminUserResultOut:
    request = wallet_pb2.FreezeUserRequest(username=username, reason=body.reason)
    reply = await svc.wallet.call(svc.wallet.stub.FreezeUser, request, caller)
    return s.AdminUserResultOut(msg="User frozen", user=s.AdminUserOut.from_proto(reply))


@router.post("/admin/users/{username}/unfreeze")
async def unfreeze_user(
    username: Username, caller: AuthCaller, svc: ServicesDep
) -> s.AdminUserResultOut:
    request = wallet_pb2.UnfreezeUserRequest(username=username)
    reply = await svc.wallet.call(svc.wallet.stub.UnfreezeUser, request, caller)
    return s.AdminUserResultOut(msg="User unfrozen", user=s.AdminUserOut.from_proto(reply))
