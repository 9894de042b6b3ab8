"""Service accounts: admin routes (the wallet checks the role on every call) and the OAuth
2.0 client-credentials grant, POST /oauth/token."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Path, Request, Response
from pydantic import ValidationError
from wallet.v1 import wallet_pb2

from gateway import service_account_schemas as sa
from gateway.deps import AuthCaller, PublicCaller, ServicesDep, limit_login
from gateway.errors import ApiError, from_validation_errors
from gateway.routes import ERROR_RESPONSES, wallet_router

router = wallet_router("service accounts")
# Not an exact-JSON route: RFC 6749 sends the grant as a form; JSON is accepted too.
token_router = APIRouter(responses=ERROR_RESPONSES, tags=["service accounts"])

AccountId = Path(min_length=1, max_length=64)
_FORM = "application/x-www-form-urlencoded"
_TOKEN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": sa.TokenIn.model_json_schema()}
            for media in (_FORM, "application/json")
        },
    }
}


@router.post("/admin/service-accounts", status_code=201)
async def create(
    body: sa.ServiceAccountIn, caller: AuthCaller, svc: ServicesDep
) -> sa.ServiceAccountSecretOut:
    """The client_secret is in this answer only: the wallet keeps its hash."""
    request = wallet_pb2.CreateServiceAccountRequest(name=body.name, scopes=body.scopes)
    reply = await svc.wallet.call(svc.wallet.stub.CreateServiceAccount, request, caller)
    return sa.ServiceAccountSecretOut.from_proto("Service account created", reply)


@router.get("/admin/service-accounts")
async def list_accounts(caller: AuthCaller, svc: ServicesDep) -> sa.ServiceAccountListOut:
    request = wallet_pb2.ListServiceAccountsRequest()
    reply = await svc.wallet.call(svc.wallet.stub.ListServiceAccounts, request, caller)
    return sa.ServiceAccountListOut(
        accounts=[sa.ServiceAccountOut.from_proto(a) for a in reply.accounts]
    )


@router.post("/admin/service-accounts/{account_id}/rotate")
async def rotate(
    body: sa.RotateIn, caller: AuthCaller, svc: ServicesDep, account_id: str = AccountId
) -> sa.ServiceAccountSecretOut:
    """A new secret; the old one keeps working for grace_seconds."""
    request = wallet_pb2.RotateServiceAccountSecretRequest(
        id=account_id, grace_seconds=body.grace_seconds
    )
    reply = await svc.wallet.call(svc.wallet.stub.RotateServiceAccountSecret, request, caller)
    return sa.ServiceAccountSecretOut.from_proto("Secret rotated", reply)


@router.post("/admin/service-accounts/{account_id}/disable")
async def disable(
    caller: AuthCaller, svc: ServicesDep, account_id: str = AccountId
) -> sa.ServiceAccountOut:
    """Every token of the account stops working at once."""
    request = wallet_pb2.DisableServiceAccountRequest(id=account_id)
    reply = await svc.wallet.call(svc.wallet.stub.DisableServiceAccount, request, caller)
    return sa.ServiceAccountOut.from_proto(reply)


@token_router.post("/oauth/token", openapi_extra=_TOKEN_BODY)
async def token(
    request: Request, response: Response, caller: PublicCaller, svc: ServicesDep
) -> sa.TokenOut:
    """Client credentials grant (grant_type=client_credentials, client_id, client_secret)."""
    try:
        grant = sa.TokenIn.model_validate(await _token_fields(request))
    except ValidationError as exc:
        raise from_validation_errors(exc.errors()) from exc
    if grant.grant_type != "client_credentials":
        raise ApiError(400, "unsupported_grant_type", "grant_type must be client_credentials")
    # Each attempt costs the wallet an argon2id hash: limited like logins, per client id.
    await limit_login(svc, caller, f"client:{grant.client_id}")
    call = wallet_pb2.IssueServiceTokenRequest(
        client_id=grant.client_id, client_secret=grant.client_secret
    )
    reply = await svc.wallet.call(svc.wallet.stub.IssueServiceToken, call, caller)
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 5.1
    return sa.TokenOut.from_proto(reply)


async def _token_fields(request: Request) -> dict[str, Any]:
    raw = await request.body()
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        if media == _FORM:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            fields = dict(pairs)
            if len(fields) != len(pairs):  # RFC 6749 3.2: no parameter twice
                raise ApiError(400, "invalid_request", "A parameter was sent more than once")
            return fields
        parsed = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "invalid_request", "The body is neither a form nor JSON") from exc
    if not isinstance(parsed, dict):
        raise ApiError(400, "invalid_request", "The body must be an object")
    return parsed
