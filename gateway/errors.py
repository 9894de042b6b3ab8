"""The gateway's one error boundary: gRPC status -> HTTP status and the JSON error body.

Every error leaves as `{"msg": ..., "error": {"code", "message", "request_id"}}`; `msg`
keeps the original Flask clients working, `error.code` is the stable machine code. The
code comes from the wallet's `google.rpc.ErrorInfo.reason` when present, else from the
gRPC status name. Anything unexpected is logged with the request id and the client
gets a generic 500.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.limits import IDEMPOTENCY_KEY_RULE
from common.logs import log_fields
from common.request_context import current_request_id
from wallet_client.errors import RpcErrorDetails, decode_rpc_error

log = logging.getLogger("gateway.errors")

_WALLET_DOMAIN = "wallet"

HTTP_STATUS_BY_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status_of(grpc_status_name: str) -> int:
    """The HTTP status of a gRPC status given by name (a bulk item's `error_status`)."""
    code = getattr(grpc.StatusCode, grpc_status_name, None)
    return HTTP_STATUS_BY_GRPC.get(code, 500) if code is not None else 500


# Messages written by gRPC itself (not the wallet) can name hosts and ports: replace them.
_TRANSPORT_MESSAGES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "Wallet service unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Wallet service did not answer in time",
}

INTERNAL_MESSAGE = "Internal server error"


@dataclass(eq=False)  # exceptions compare and hash by identity
class ApiError(Exception):
    """An error the client should see as is."""

    status: int
    code: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


def error_body(code: str, message: str, request_id: str) -> dict[str, Any]:
    return {"msg": message, "error": {"code": code, "message": message, "request_id": request_id}}


def error_response(error: ApiError, request_id: str) -> JSONResponse:
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        error_body(error.code, error.message, request_id), status_code=error.status, headers=headers
    )


def internal_error_response(request_id: str) -> JSONResponse:
    return error_response(ApiError(500, "internal", INTERNAL_MESSAGE), request_id)


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or current_request_id())


# --- gRPC -> HTTP -------------------------------------------------------------------------------


def from_rpc_error(error: grpc.aio.AioRpcError) -> ApiError | None:
    """The client-facing error for a failed wallet call; None means "unexpected, give a 500"."""
    http_status = HTTP_STATUS_BY_GRPC.get(error.code())
    if http_status is None:
        return None
    decoded = decode_rpc_error(error)
    if decoded.domain == _WALLET_DOMAIN and decoded.reason:
        code = decoded.reason
        message = decoded.message or decoded.reason
    else:
        code = decoded.code.name.lower()
        message = _TRANSPORT_MESSAGES.get(decoded.code) or decoded.message or code
    headers = _retry_after(decoded) if http_status == 429 else {}
    return ApiError(http_status, code, message, headers)


def _retry_after(decoded: RpcErrorDetails) -> dict[str, str]:
    if decoded.retry_delay_seconds is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(decoded.retry_delay_seconds)))}


# --- request validation -----------------------------------------------------------------------


def from_validation_errors(errors: Sequence[Any]) -> ApiError:
    """One 400 for malformed JSON, a missing body, wrong types and unknown fields."""
    types = {str(item.get("type")) for item in errors}
    if "json_invalid" in types:
        return ApiError(400, "malformed_json", "Request body is not valid JSON")
    if any(_is_missing_body(item) for item in errors):
        return ApiError(400, "missing_body", "Request body is required (a JSON object)")
    if any(_is_not_object(item) for item in errors):
        message = "Request body must be a JSON object sent as Content-Type: application/json"
        return ApiError(400, "invalid_body", message)
    # An over-long Idempotency-Key answers what the wallet would (same code, same message),
    # and, as when the wallet checked it, only once everything else is valid.
    others = [item for item in errors if tuple(item.get("loc", ())) != _IDEMPOTENCY_KEY_LOC]
    if errors and not others:
        return ApiError(400, "invalid_idempotency_key", IDEMPOTENCY_KEY_RULE)
    types = {str(item.get("type")) for item in others}
    code = "unknown_field" if types == {"extra_forbidden"} else "invalid_request"
    return ApiError(400, code, "; ".join(_describe(item) for item in others[:5]))


_IDEMPOTENCY_KEY_LOC = ("header", "Idempotency-Key")


def _is_missing_body(item: Mapping[str, Any]) -> bool:
    return item.get("type") == "missing" and tuple(item.get("loc", ())) == ("body",)


def _is_not_object(item: Mapping[str, Any]) -> bool:
    # A non-JSON content type reaches validation as raw bytes, a JSON array as a list.
    return tuple(item.get("loc", ())) == ("body",) and item.get("type") != "missing"


def _describe(item: Mapping[str, Any]) -> str:
    loc = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path")]
    where = ".".join(loc) or "body"
    if item.get("type") == "extra_forbidden":
        return f"unknown field '{where}'"
    reason = str(item.get("msg", "invalid value"))
    # pydantic prefixes messages of ValueError raised in validators with "Value error, ".
    return f"{where}: {reason.removeprefix('Value error, ')}"


# --- handlers ---------------------------------------------------------------------------------


async def _api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc, request_id_of(request))


async def _rpc_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    request_id = request_id_of(request)
    api_error = from_rpc_error(exc)
    if api_error is None:
        log_fields(
            log,
            "unexpected wallet status",
            logging.ERROR,
            grpc_code=exc.code().name,
            grpc_details=exc.details(),
            path=request.url.path,
        )
        return internal_error_response(request_id)
    return error_response(api_error, request_id)


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(from_validation_errors(exc.errors()), request_id_of(request))


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path 404, 405, body parse 400) in our shape."""
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code
    error = ApiError(exc.status_code, code, message, dict(exc.headers or {}))
    return error_response(error, request_id_of(request))


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(grpc.aio.AioRpcError, _rpc_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
