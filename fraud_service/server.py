"""Build and run the fraud gRPC server."""

from __future__ import annotations

import logging

import grpc
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from grpc_health.v1.health import HealthServicer

from common.grpc_server import add_health_and_reflection, build_server, serve_until_signal
from common.logs import log_fields
from common.telemetry import Telemetry, build_telemetry
from fraud_service.metrics import FraudMetrics
from fraud_service.servicer import FraudServicer
from fraud_service.settings import FraudSettings

log = logging.getLogger("fraud_service")

SERVICE_NAME = fraud_pb2.DESCRIPTOR.services_by_name["FraudService"].full_name


def build_fraud_server(
    settings: FraudSettings, telemetry: Telemetry
) -> tuple[grpc.Server, int, HealthServicer]:
    """The bound, not yet started server, its real port and its health servicer."""
    server, port = build_server(
        address=settings.addr, max_workers=settings.max_workers, telemetry=telemetry
    )
    servicer = FraudServicer(settings.rules, FraudMetrics(telemetry.registry))
    fraud_pb2_grpc.add_FraudServiceServicer_to_server(servicer, server)
    health_servicer = add_health_and_reflection(server, [SERVICE_NAME])
    return server, port, health_servicer


def create_server(
    settings: FraudSettings, telemetry: Telemetry | None = None
) -> tuple[grpc.Server, int]:
    """The bound, not yet started server and its real port (port 0 in addr picks one).
    Pass a `telemetry` to read its metrics and spans (tests do); by default they are kept
    in a registry nobody serves."""
    server, port, _ = build_fraud_server(
        settings, telemetry or build_telemetry("fraud_service", settings.telemetry)
    )
    return server, port


def serve(settings: FraudSettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls for `grace_seconds`."""
    telemetry = build_telemetry("fraud_service", settings.telemetry)
    server, port, health_servicer = build_fraud_server(settings, telemetry)
    metrics_port = telemetry.serve_metrics(settings.telemetry)
    log_fields(
        log,
        "listening",
        addr=settings.addr,
        port=port,
        metrics_port=metrics_port,
        rules_version=settings.rules.rules_version,
    )
    serve_until_signal(
        server, health_servicer, grace_seconds=settings.grace_seconds, on_stop=telemetry.close
    )
