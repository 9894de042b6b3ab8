"""Liveness, readiness and metrics for orchestrators and Prometheus (not wallet-backed, so
no error catalogue)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import schemas as s
from gateway.deps import ServicesDep
from gateway.errors import ApiError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> s.StatusOut:
    """The process is up (it does not look at the wallet)."""
    return s.StatusOut(status="ok")


@router.get(
    "/readyz",
    responses={503: {"model": s.ErrorOut, "description": "Wallet unreachable or not serving"}},
)
async def readyz(svc: ServicesDep) -> s.StatusOut:
    """The wallet answers grpc.health.v1 Check with SERVING."""
    if not await svc.wallet.is_serving():
        raise ApiError(503, "not_ready", "Wallet service is not reachable or not serving")
    return s.StatusOut(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(svc: ServicesDep) -> Response:
    """This gateway process's metrics in the Prometheus text format."""
    return Response(generate_latest(svc.telemetry.registry), media_type=CONTENT_TYPE_LATEST)
