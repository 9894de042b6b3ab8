"""The REST gateway, assembled: routers, error handlers and middleware around one set of
per-process services (gateway.deps.Services: the wallet channel and the rate limiter).

No money logic and no secrets live in the gateway: the wallet authenticates, authorizes and
validates. The gateway checks JSON types and the contract's lengths, limits body size and
request rates, and maps every error in one place (gateway.errors).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from common.telemetry import Telemetry, build_telemetry
from gateway.deps import Services
from gateway.docs import install_docs
from gateway.errors import install_error_handlers
from gateway.middleware import install_middleware
from gateway.routes import (
    account,
    admin,
    auth,
    fraud_admin,
    money,
    notifications,
    probes,
    service_accounts,
)
from gateway.settings import GatewaySettings
from gateway.web import install_web


def create_app(settings: GatewaySettings, telemetry: Telemetry | None = None) -> FastAPI:
    """`telemetry`: where the metrics and spans go (tests pass one to read them back)."""
    if telemetry is None:
        telemetry = build_telemetry("gateway", settings.telemetry)
    services = Services(settings, telemetry)

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
        # /docs is served from the gateway's own assets (gateway.docs); no /redoc
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    for module in (
        auth,
        account,
        money,
        admin,
        fraud_admin,
        notifications,
        service_accounts,
        probes,
    ):
        app.include_router(module.router)
    app.include_router(service_accounts.token_router)
    install_docs(app)
    install_web(app)  # the pages at / and /app/... (after the API: its paths win)
    install_error_handlers(app)
    install_middleware(app, settings, services.metrics)
    # Continues an incoming W3C traceparent (or starts a trace) with a span per route; the
    # wallet client's interceptor carries it on. Probes and scrapes are not traced.
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=telemetry.tracer_provider,
        excluded_urls="healthz,readyz,metrics",
        exclude_spans=["receive", "send"],
    )
    return app
