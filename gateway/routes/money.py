"""Money movements: deposit, withdraw, transfer (each idempotent with an Idempotency-Key),
and bulk transfers (each item idempotent with its own key)."""

from __future__ import annotations

from wallet.v1 import wallet_pb2

from gateway import schemas as s
from gateway.deps import AuthCaller, IdempotencyKey, ServicesDep
from gateway.errors import http_status_of
from gateway.routes import wallet_router

router = wallet_router("money")


@router.post("/deposit", status_code=201)
async def deposit(
    body: s.MovementIn, caller: AuthCaller, svc: ServicesDep, idempotency_key: IdempotencyKey = ""
) -> s.MovementOut:
    request = wallet_pb2.DepositRequest(
        amount=body.amount, currency=body.currency, idempotency_key=idempotency_key
    )
    reply = await svc.wallet.call(svc.wallet.stub.Deposit, request, caller)
    return s.MovementOut.from_proto("Deposit successful", reply)


@router.post("/withdraw", status_code=201)
async def withdraw(
    body: s.MovementIn, caller: AuthCaller, svc: ServicesDep, idempotency_key: IdempotencyKey = ""
) -> s.MovementOut:
    request = wallet_pb2.WithdrawRequest(
        amount=body.amount, currency=body.currency, idempotency_key=idempotency_key
    )
    reply = await svc.wallet.call(svc.wallet.stub.Withdraw, request, caller)
    return s.MovementOut.from_proto("Withdrawal successful", reply)


@router.post("/transfer", status_code=201)
async def transfer(
    body: s.TransferIn, caller: AuthCaller, svc: ServicesDep, idempotency_key: IdempotencyKey = ""
) -> s.MovementOut:
    request = wallet_pb2.TransferRequest(
        to_username=body.to_username,
        amount=body.amount,
        currency=body.currency,
        idempotency_key=idempotency_key,
    )
    reply = await svc.wallet.call(svc.wallet.stub.Transfer, request, caller)
    return s.MovementOut.from_proto("Transfer successful", reply)


_BATCH_MODES = {"independent": wallet_pb2.INDEPENDENT, "atomic": wallet_pb2.ATOMIC}


@router.post("/transfers/batch", status_code=200)
async def transfer_batch(
    body: s.TransferBatchIn, caller: AuthCaller, svc: ServicesDep
) -> s.TransferBatchOut:
    """200 with one result per item (independent: each item's error as POST /transfer
    would answer it); atomic: all committed, or the first failing item's error status,
    naming `items[i]`, and nothing moved."""
    request = wallet_pb2.CreateTransfersRequest(
        mode=_BATCH_MODES[body.mode],
        items=[
            wallet_pb2.TransferItem(
                to_username=i.to_username,
                amount=i.amount,
                currency=i.currency,
                idempotency_key=i.idempotency_key,
            )
            for i in body.items
        ],
    )
    reply = await svc.wallet.call(svc.wallet.stub.CreateTransfers, request, caller)
    return s.TransferBatchOut(
        msg="Batch processed",
        succeeded=reply.succeeded,
        failed=reply.failed,
        results=[
            s.BatchItemOut.from_proto(r, http_status_of(r.error_status)) for r in reply.results
        ],
    )
