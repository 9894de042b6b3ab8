"""The REST gateway: thin routes that turn JSON into wallet gRPC calls and replies back into JSON.

No money logic and no secrets live here: the wallet authenticates, authorizes and
validates. The gateway checks JSON types, limits body size and request rates, and
maps every error in one place (gateway.errors).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from wallet.v1 import wallet_pb2

from common.logs import log_fields
from common.ratelimit import AsyncRateLimiter, RateLimit, build_async_rate_limiter
from common.request_context import accept_request_id, request_id_var
from gateway import schemas as s
from gateway.errors import (
    ApiError,
    error_response,
    install_error_handlers,
    internal_error_response,
)
from gateway.settings import GatewaySettings
from gateway.wallet_client import Caller, WalletClient, is_valid_metadata_value

access_log = logging.getLogger("gateway.access")
log = logging.getLogger("gateway")


# --- per-process services -----------------------------------------------------------------------


class Services:
    """What routes need, built at startup inside the event loop (the gRPC channel binds to it)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._wallet: WalletClient | None = None
        self._limiter: AsyncRateLimiter | None = None

    async def start(self) -> None:
        self._wallet = WalletClient(
            self.settings.wallet_addr,
            timeout_seconds=self.settings.rpc_timeout_seconds,
            ready_timeout_seconds=self.settings.ready_timeout_seconds,
        )
        self._limiter = build_async_rate_limiter(
            self.settings.redis_url, prefix="gateway:ratelimit:"
        )

    async def stop(self) -> None:
        if self._wallet is not None:
            await self._wallet.close()
        if self._limiter is not None:
            await self._limiter.close()

    @property
    def wallet(self) -> WalletClient:
        assert self._wallet is not None, "Services.start() not called"
        return self._wallet

    async def enforce(self, key: str, rule: RateLimit, message: str) -> None:
        """Raise 429 with Retry-After when `key` is over `rule`."""
        if not rule.enabled:
            return
        assert self._limiter is not None, "Services.start() not called"
        decision = await self._limiter.hit(key, rule)
        if not decision.allowed:
            headers = {"Retry-After": str(decision.retry_after_seconds)}
            raise ApiError(429, "rate_limited", message, headers)


# Dependencies are `async def` on purpose: plain `def` ones run in a thread pool, and that
# hand-off per dependency per request dominated the gateway's CPU under load.
async def get_services(request: Request) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


def _digest(text: str) -> str:
    """Rate-limit keys hold digests: no token or raw username lands in a shared store."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


_bearer = HTTPBearer(auto_error=False, description="The access_token from POST /login.")


async def public_caller(request: Request) -> Caller:
    return Caller(request_id=str(request.state.request_id), client_ip=_client_ip(request))


async def authenticated_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Requires `Authorization: Bearer <token>`; the wallet verifies the token itself."""
    if credentials is None:
        raise ApiError(401, "token_missing", "Missing bearer token")
    authorization = f"Bearer {credentials.credentials}"
    if not is_valid_metadata_value(authorization):
        raise ApiError(401, "token_invalid", "Invalid token")
    return Caller(
        request_id=str(request.state.request_id),
        authorization=authorization,
        client_ip=_client_ip(request),
    )


# No money limit in the gateway. Keyed on the token, a user mints more tokens to get more;
# keyed on the JWT's `sub`, which the gateway cannot verify (it holds no secret), anyone
# could forge tokens naming a victim and use up the victim's allowance, locking them out of
# their own money. The wallet verifies the token and limits money calls per authenticated
# user (MONEY_RATE_LIMIT_PER_USER), which also covers callers that skip the gateway.

ServicesDep = Annotated[Services, Depends(get_services)]
PublicCaller = Annotated[Caller, Depends(public_caller)]
AuthCaller = Annotated[Caller, Depends(authenticated_caller)]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Client-chosen key: a retry with the same key and body moves money once.",
    ),
]
TransactionId = Annotated[str, Path(min_length=1, max_length=128)]
Limit = Annotated[int | None, Query(ge=1, le=200, description="Page size (default 50)")]

# Every wallet-backed route can answer with these; documented so clients (and schemathesis) know.
_ERROR_STATUSES = {
    400: "Malformed JSON, wrong types, unknown fields or a value the wallet rejects",
    401: "Missing, invalid, expired or revoked token, or wrong credentials",
    403: "Not allowed (e.g. a normal user on /admin)",
    404: "No such user or transaction (or not yours)",
    409: "Username taken, or Idempotency-Key reused with a different request",
    413: "Request body over the size limit",
    422: "Refused by a business rule (insufficient funds, blocked by fraud checks, ...)",
    429: "Rate limited: see Retry-After",
    500: "Unexpected error (logged with the request id)",
    503: "Wallet service unavailable",
    504: "Wallet service did not answer in time",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": s.ErrorOut, "description": text} for status, text in _ERROR_STATUSES.items()
}

router = APIRouter(route_class=s.ExactJSONRoute, responses=ERROR_RESPONSES)
probes = APIRouter(tags=["health"])


# --- public -------------------------------------------------------------------------------------


@router.post("/register", status_code=201, tags=["auth"])
async def register(body: s.CredentialsIn, caller: PublicCaller, svc: ServicesDep) -> s.RegisterOut:
    message = "Too many registrations, try again later"
    await svc.enforce(f"register:ip:{caller.client_ip}", svc.settings.register_per_ip, message)
    request = wallet_pb2.RegisterRequest(username=body.username, password=body.password)
    reply = await svc.wallet.call(svc.wallet.stub.Register, request, caller)
    return s.RegisterOut(msg="User registered", user=s.UserOut.from_proto(reply.user))


@router.post("/login", tags=["auth"])
async def login(body: s.CredentialsIn, caller: PublicCaller, svc: ServicesDep) -> s.LoginOut:
    message = "Too many login attempts, try again later"
    await svc.enforce(f"login:ip:{caller.client_ip}", svc.settings.login_per_ip, message)
    user_key = f"login:user:{_digest(body.username.strip().casefold())}"
    await svc.enforce(user_key, svc.settings.login_per_username, message)
    request = wallet_pb2.LoginRequest(username=body.username, password=body.password)
    reply = await svc.wallet.call(svc.wallet.stub.Login, request, caller)
    return s.LoginOut.from_proto(reply)


# --- the caller's own account -------------------------------------------------------------------


@router.get("/balance", tags=["account"])
async def balance(
    caller: AuthCaller, svc: ServicesDep, currency: Annotated[str, Query(max_length=16)] = "USD"
) -> s.BalanceOut:
    request = wallet_pb2.GetBalanceRequest(currency=currency)
    return s.BalanceOut.from_proto(
        await svc.wallet.call(svc.wallet.stub.GetBalance, request, caller)
    )


@router.get("/balances", tags=["account"])
async def balances(caller: AuthCaller, svc: ServicesDep) -> s.BalancesOut:
    request = wallet_pb2.ListBalancesRequest()
    reply = await svc.wallet.call(svc.wallet.stub.ListBalances, request, caller)
    return s.BalancesOut.from_proto(reply)


@router.post("/deposit", status_code=201, tags=["money"])
async def deposit(
    body: s.MovementIn, caller: AuthCaller, svc: ServicesDep, idempotency_key: IdempotencyKey = ""
) -> s.MovementOut:
    request = wallet_pb2.DepositRequest(
        amount=body.amount, currency=body.currency, idempotency_key=idempotency_key
    )
    reply = await svc.wallet.call(svc.wallet.stub.Deposit, request, caller)
    return s.MovementOut.from_proto("Deposit successful", reply)


@router.post("/withdraw", status_code=201, tags=["money"])
async def withdraw(
    body: s.MovementIn, caller: AuthCaller, svc: ServicesDep, idempotency_key: IdempotencyKey = ""
) -> s.MovementOut:
    request = wallet_pb2.WithdrawRequest(
        amount=body.amount, currency=body.currency, idempotency_key=idempotency_key
    )
    reply = await svc.wallet.call(svc.wallet.stub.Withdraw, request, caller)
    return s.MovementOut.from_proto("Withdrawal successful", reply)


@router.post("/transfer", status_code=201, tags=["money"])
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


@router.get("/transactions", tags=["account"])
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


@router.get("/transactions/{transaction_id}", tags=["account"])
async def transaction(
    transaction_id: TransactionId, caller: AuthCaller, svc: ServicesDep
) -> s.TransactionOut:
    request = wallet_pb2.GetTransactionRequest(transaction_id=transaction_id)
    reply = await svc.wallet.call(svc.wallet.stub.GetTransaction, request, caller)
    return s.TransactionOut.from_proto(reply)


@router.delete("/me", tags=["account"])
async def delete_me(caller: AuthCaller, svc: ServicesDep) -> s.UserResultOut:
    request = wallet_pb2.DeleteAccountRequest()
    reply = await svc.wallet.call(svc.wallet.stub.DeleteAccount, request, caller)
    return s.UserResultOut(msg="Account deleted", user=s.UserOut.from_proto(reply))


@router.post("/me/password", tags=["auth"])
async def change_password(
    body: s.PasswordChangeIn, caller: AuthCaller, svc: ServicesDep
) -> s.LoginOut:
    """Needs the current password; every older token stops working, the new one answered
    here keeps the caller logged in."""
    request = wallet_pb2.ChangePasswordRequest(
        current_password=body.current_password, new_password=body.new_password
    )
    reply = await svc.wallet.call(svc.wallet.stub.ChangePassword, request, caller)
    return s.LoginOut.from_proto(reply)


@router.post("/logout", tags=["auth"])
async def logout(caller: AuthCaller, svc: ServicesDep) -> s.MessageOut:
    """Log out everywhere: every token of the caller, this one included, stops working."""
    await svc.wallet.call(svc.wallet.stub.LogoutAll, wallet_pb2.LogoutAllRequest(), caller)
    return s.MessageOut(msg="Logged out everywhere")


# --- admin --------------------------------------------------------------------------------------


@router.get("/admin/flagged", tags=["admin"])
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


@router.post("/admin/transactions/{transaction_id}/review", tags=["admin"])
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


@router.post("/admin/transactions/{transaction_id}/reverse", status_code=201, tags=["admin"])
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


@router.delete("/admin/transactions/{transaction_id}", tags=["admin"])
async def delete_transaction(
    transaction_id: TransactionId, caller: AuthCaller, svc: ServicesDep
) -> s.AdminTransactionResultOut:
    request = wallet_pb2.DeleteTransactionRequest(transaction_id=transaction_id)
    reply = await svc.wallet.call(svc.wallet.stub.DeleteTransaction, request, caller)
    return s.AdminTransactionResultOut(
        msg="Transaction deleted", transaction=s.AdminTransactionOut.from_proto(reply)
    )


@router.delete("/admin/users/{username}", tags=["admin"])
async def delete_user(
    username: Annotated[str, Path(min_length=1, max_length=128)],
    caller: AuthCaller,
    svc: ServicesDep,
) -> s.UserResultOut:
    request = wallet_pb2.DeleteUserRequest(username=username)
    reply = await svc.wallet.call(svc.wallet.stub.DeleteUser, request, caller)
    return s.UserResultOut(msg="User deleted", user=s.UserOut.from_proto(reply))


@router.post("/admin/users/{username}/freeze", tags=["admin"])
async def freeze_user(
    username: Annotated[str, Path(min_length=1, max_length=128)],
    body: s.FreezeIn,
    caller: AuthCaller,
    svc: ServicesDep,
) -> s.AdminUserResultOut:
    request = wallet_pb2.FreezeUserRequest(username=username, reason=body.reason)
    reply = await svc.wallet.call(svc.wallet.stub.FreezeUser, request, caller)
    return s.AdminUserResultOut(msg="User frozen", user=s.AdminUserOut.from_proto(reply))


@router.post("/admin/users/{username}/unfreeze", tags=["admin"])
async def unfreeze_user(
    username: Annotated[str, Path(min_length=1, max_length=128)],
    caller: AuthCaller,
    svc: ServicesDep,
) -> s.AdminUserResultOut:
    request = wallet_pb2.UnfreezeUserRequest(username=username)
    reply = await svc.wallet.call(svc.wallet.stub.UnfreezeUser, request, caller)
    return s.AdminUserResultOut(msg="User unfrozen", user=s.AdminUserOut.from_proto(reply))


# --- probes -------------------------------------------------------------------------------------


@probes.get("/healthz")
async def healthz() -> s.StatusOut:
    """The process is up (it does not look at the wallet)."""
    return s.StatusOut(status="ok")


@probes.get(
    "/readyz",
    responses={503: {"model": s.ErrorOut, "description": "Wallet unreachable or not serving"}},
)
async def readyz(svc: ServicesDep) -> s.StatusOut:
    """The wallet answers grpc.health.v1 Check with SERVING."""
    if not await svc.wallet.is_serving():
        raise ApiError(503, "not_ready", "Wallet service is not reachable or not serving")
    return s.StatusOut(status="ready")


# --- middleware ---------------------------------------------------------------------------------


class RequestContextMiddleware:
    """Outermost: binds the request id, echoes X-Request-ID, logs one access line, and turns
    any exception that escaped the handlers into a generic 500 (never a stack trace)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(Headers(scope=scope).get("x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"fields": {"path": scope.get("path")}})
            if response_started:
                raise
            await internal_error_response(request_id)(scope, receive, send_with_id)
        finally:
            log_fields(
                access_log,
                "http",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                client=(scope.get("client") or ("", 0))[0],
            )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Reads the body up to `max_bytes` before any route sees it; more is a 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"Request body is larger than {self.max_bytes} bytes"
        error = ApiError(413, "payload_too_large", message, {"Connection": "close"})
        await error_response(error, request_id_var.get())(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later reads wait for the disconnect, as usual

    return replay


# --- app ----------------------------------------------------------------------------------------


def create_app(settings: GatewaySettings) -> FastAPI:
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="Digital wallet gateway",
        version="1.0.0",
        description="REST+JSON front of the wallet gRPC service. Amounts are decimal strings.",
        lifespan=lifespan,
    )
    app.state.services = services
    # Imported here: those routes reuse this module's dependencies (a cycle at import).
    from gateway.fraud_admin_routes import router as fraud_admin_router

    app.include_router(router)
    app.include_router(fraud_admin_router)
    app.include_router(probes)
    install_error_handlers(app)
    # add_middleware wraps: the last added runs first.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware)
    return app
