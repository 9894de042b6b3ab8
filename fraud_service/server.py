"""Builds the fraud gRPC server from settings; `serve()` runs it until SIGTERM."""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


@dataclass
class FraudServer:
    """A bound, not yet started server, like wallet_service.server.WalletServer."""

    server: grpc.Server
    port: int
    health: HealthServicer
    telemetry: Telemetry

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float | None = None) -> None:
        self.server.stop(grace).wait()


def create_server(settings: FraudSettings, telemetry: Telemetry | None = None) -> FraudServer:
    """A ready-to-start server; bind port 0 in tests and read `.port` back. Pass a
    `telemetry` to read its metrics and spans (tests do); `serve` starts the scrape
    endpoint of the one it builds from the settings."""
    telemetry = telemetry or build_telemetry("fraud_service", settings.telemetry)
    server, port = build_server(
        address=settings.addr, max_workers=settings.max_workers, telemetry=telemetry
    )
    servicer = FraudServicer(settings.rules, FraudMetrics(telemetry.registry))
    fraud_pb2_grpc.add_FraudServiceServicer_to_server(servicer, server)
    health = add_health_and_reflection(server, [SERVICE_NAME])
    return FraudServer(server, port, health, telemetry)


def serve(settings: FraudSettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls for `grace_seconds`."""
    fraud = create_server(settings)
    metrics_port = fraud.telemetry.serve_metrics(settings.telemetry)
    log_fields(
        log,
        "listening",
        addr=settings.addr,
        port=fraud.port,
        metrics_port=metrics_port,
        rules_version=settings.rules.rules_version,
    )
    serve_until_signal(
        fraud.server,
        fraud.health,
        grace_seconds=settings.grace_seconds,
        on_stop=fraud.telemetry.close,
    )
