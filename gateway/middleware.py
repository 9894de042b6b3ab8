"""ASGI middleware: RED metrics, the request id and access log, the body size limit, CORS.

Plain ASGI classes: they see each body chunk, so the body limit stops reading at
`max_bytes`, and they wrap every response, the error responses included.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.logs import log_fields
from common.request_context import accept_request_id, request_id_var
from gateway.errors import ApiError, error_response, internal_error_response
from gateway.metrics import GatewayMetrics, MetricsMiddleware
from gateway.settings import GatewaySettings

access_log = logging.getLogger("gateway.access")
log = logging.getLogger("gateway")


def install_middleware(app: FastAPI, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
    """Outermost first: metrics, request context, CORS (when configured), the body limit.
    (Tracing wraps them all: FastAPIInstrumentor puts its middleware outside the stack.)"""
    # add_middleware wraps: the last added runs first.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        per_path={BATCH_PATH: settings.max_batch_body_bytes},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)


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


BATCH_PATH = "/transfers/batch"  # bulk transfers: up to 1,000 items, a larger body


class BodyLimitMiddleware:
    """Reads the body up to `max_bytes` (or the path's own limit in `per_path`) before any
    route sees it; more is a 413."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, per_path: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.per_path.get(scope.get("path", ""), self.default_max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            await self._too_large(scope, receive, send, max_bytes)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > max_bytes:
                await self._too_large(scope, receive, send, max_bytes)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        message = f"Request body is larger than {max_bytes} bytes"
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
