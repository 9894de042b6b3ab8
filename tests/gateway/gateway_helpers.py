"""Helpers for gateway tests: a uvicorn server in a thread, settings, error-body checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

StartGateway = Callable[..., str]


def unique(prefix: str = "user") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def assert_error(
    response: httpx.Response, status: int, code: str, message: str | None = None
) -> dict[str, Any]:
    """The one error shape: exact keys, msg == error.message, request id == X-Request-ID."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    request_id = response.headers["x-request-id"]
    expected_message = body["msg"] if message is None else message
    assert body == {
        "msg": expected_message,
        "error": {"code": code, "message": expected_message, "request_id": request_id},
    }
    return body
