"""Money movements: deposit, withdraw, transfer (each idempotent with an Idempotency-Key)."""

from __future__ import annotations

from wallet.v1 import wallet_pb2

from gateway import schemas as s
from gateway.deps import AuthCaller, IdempotencyKey, ServicesDep
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
