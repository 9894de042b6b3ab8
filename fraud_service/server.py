"""Build and run the fraud gRPC server."""

from __future__ import annotations

import logging

import grpc
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from grpc_health.v1.health import HealthServicer

from common.grpc_server import add_health_and_reflection, build_server, serve_until_signal
from common.logs import log_fields
from fraud_service.servicer import FraudServicer
from fraud_service.settings import FraudSettings

log = logging.getLogger("fraud_service")

SERVICE_NAME = fraud_pb2.DESCRIPTOR.services_by_name["FraudService"].full_name


def build_fraud_server(settings: FraudSettings) -> tuple[grpc.Server, int, HealthServicer]:
    """The bound, not yet started server, its real port and its health servicer."""
    server, port = build_server(address=settings.addr, max_workers=settings.max_workers)
    fraud_pb2_grpc.add_FraudServiceServicer_to_server(FraudServicer(settings.rules), server)
    health_servicer = add_health_and_reflection(server, [SERVICE_NAME])
    return server, port, health_servicer


def create_server(settings: FraudSettings) -> tuple[grpc.Server, int]:
    """The bound, not yet started server and its real port (port 0 in addr picks one)."""
    server, port, _ = build_fraud_server(settings)
    return server, port


def serve(settings: FraudSettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls for `grace_seconds`."""
    server, port, health_servicer = build_fraud_server(settings)
    log_fields(
        log,
        "listening",
        addr=settings.addr,
        port=port,
        rules_version=settings.rules.rules_version,
    )
    serve_until_signal(server, health_servicer, grace_seconds=settings.grace_seconds)
