"""The REST routes, one module per audience: auth, account, money, admin, probes.

Each route is thin: it turns the request into a wallet gRPC call through the stub and maps
the answer into a response shape (gateway.schemas); errors are mapped in gateway.errors.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway import schemas as s
from gateway.deps import ExactJSONRoute

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


def wallet_router(tag: str) -> APIRouter:
    """A router of wallet-backed routes: exact JSON bodies and the documented error answers."""
    return APIRouter(route_class=ExactJSONRoute, responses=ERROR_RESPONSES, tags=[tag])
