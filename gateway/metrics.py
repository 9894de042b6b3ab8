"""The gateway's metrics: RED per route template (never the raw path, which holds ids and
usernames) and rate-limit refusals."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.telemetry import RedMetrics

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no route: 404s, and requests refused before routing (413)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.red = RedMetrics(
            registry,
            total=(
                "http_server_requests_total",
                "HTTP requests answered, by method, route template and status code",
            ),
            seconds=(
                "http_server_request_duration_seconds",
                "Time to answer an HTTP request, by method and route template",
            ),
            labels=("method", "route"),
            outcome_label="status",
        )
        self.rate_limited = Counter(
            "gateway_rate_limit_refusals_total",
            "Requests refused with 429 by a gateway rate limit, by limit",
            ["limit"],
            registry=registry,
        )


class MetricsMiddleware:
    """Outermost but tracing: sees the final status, the 500 of an escaped error included.
    The route template is read after the call, from the scope the router filled in."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.red.observe((method, route), str(status), time.perf_counter() - started)
