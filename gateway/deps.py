"""What routes depend on: the wallet client and limiter, who is calling (request id, bearer
token, client address), the rate limits, the shared parameter types and exact JSON parsing.

Dependencies are `async def` on purpose: plain `def` ones run in a thread pool, and that
hand-off per dependency per request dominated the gateway's CPU under load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.limits import (
    DEFAULT_PAGE_SIZE,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_PAGE_SIZE,
    MAX_USERNAME_INPUT_LENGTH,
)
from common.ratelimit import AsyncRateLimiter, RateLimit, build_async_rate_limiter, limit_name
from common.telemetry import Telemetry
from gateway.errors import ApiError
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from gateway.wallet_client import Caller, WalletClient, is_valid_metadata_value

# --- per-process services -----------------------------------------------------------------------


class Services:
    """What routes need, built at startup inside the event loop (the gRPC channel binds to it)."""

    def __init__(self, settings: GatewaySettings, telemetry: Telemetry) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.metrics = GatewayMetrics(telemetry.registry)
        self._wallet: WalletClient | None = None
        self._limiter: AsyncRateLimiter | None = None

    async def start(self) -> None:
        self._wallet = WalletClient(
            self.settings.wallet_addr,
            timeout_seconds=self.settings.rpc_timeout_seconds,
            ready_timeout_seconds=self.settings.ready_timeout_seconds,
            tracer_provider=self.telemetry.tracer_provider,
            tls=self.settings.tls,
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
            self.metrics.rate_limited.labels(limit_name(key)).inc()
            headers = {"Retry-After": str(decision.retry_after_seconds)}
            raise ApiError(429, "rate_limited", message, headers)


async def get_services(request: Request) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


# --- who is calling -----------------------------------------------------------------------------


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


_bearer = HTTPBearer(auto_error=False, description="The access_token from POST /login.")


async def public_caller(request: Request) -> Caller:
    return Caller(request_id=str(request.state.request_id), client_ip=client_ip(request))


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
        client_ip=client_ip(request),
    )


# --- rate limits --------------------------------------------------------------------------------
# Called by the routes once the body is valid (as dependencies they would run before body
# validation, so a malformed request would use up an allowance).
#
# No money limit in the gateway. Keyed on the token, a user mints more tokens to get more;
# keyed on the JWT's `sub`, which the gateway cannot verify (it holds no secret), anyone
# could forge tokens naming a victim and use up the victim's allowance, locking them out of
# their own money. The wallet verifies the token and limits money calls per authenticated
# user (MONEY_RATE_LIMIT_PER_USER), which also covers callers that skip the gateway.


def _digest(text: str) -> str:
    """Rate-limit keys hold digests: no token or raw username lands in a shared store."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


async def limit_register(svc: Services, caller: Caller) -> None:
    message = "Too many registrations, try again later"
    await svc.enforce(f"register:ip:{caller.client_ip}", svc.settings.register_per_ip, message)


async def limit_login(svc: Services, caller: Caller, username: str) -> None:
    message = "Too many login attempts, try again later"
    await svc.enforce(f"login:ip:{caller.client_ip}", svc.settings.login_per_ip, message)
    user_key = f"login:user:{_digest(username.strip().casefold())}"
    await svc.enforce(user_key, svc.settings.login_per_username, message)


# --- parameter types ----------------------------------------------------------------------------
# The limits are the wallet's own (common.limits), so the OpenAPI document states what the
# wallet accepts and an over-long value is refused here, without a wallet round trip.

ServicesDep = Annotated[Services, Depends(get_services)]
PublicCaller = Annotated[Caller, Depends(public_caller)]
AuthCaller = Annotated[Caller, Depends(authenticated_caller)]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Client-chosen key: a retry with the same key and body moves money once.",
    ),
]
TransactionId = Annotated[str, Path(min_length=1, max_length=128)]
Username = Annotated[str, Path(min_length=1, max_length=MAX_USERNAME_INPUT_LENGTH)]
Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size (default {DEFAULT_PAGE_SIZE})"),
]


# --- exact JSON parsing -------------------------------------------------------------------------
# Request bodies are parsed by `ExactJSONRoute`: JSON numbers become `Decimal`, never float,
# so `10.10` reaches the wallet as the string "10.10" (gateway.schemas.Amount).


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(raw: bytes) -> Any:
    """json.loads with Decimal numbers; NaN/Infinity, deep nesting and bad UTF-8 are malformed."""
    try:
        return json.loads(
            raw, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant
        )
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # includes UnicodeDecodeError
        # FastAPI turns JSONDecodeError into a validation error: reuse that path.
        raise json.JSONDecodeError(str(exc), raw.decode("utf-8", "replace"), 0) from exc


class ExactJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_exact(await self.body())
        return self._json


class ExactJSONRoute(APIRoute):
    """An APIRoute whose handlers see `ExactJSONRequest` (FastAPI's custom-route pattern)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_json_handler(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact_json_handler
