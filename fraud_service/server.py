"""Builds the fraud gRPC server from settings (FraudService, and FraudAdmin with a
store); `serve()` runs it until SIGTERM."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from grpc_health.v1.health import HealthServicer

from common.grpc_server import add_health_and_reflection, build_server, serve_until_signal
from common.logs import log_fields
from common.telemetry import Telemetry, build_telemetry
from fraud_service.admin import FraudAdmin
from fraud_service.admin_servicer import FraudAdminServicer
from fraud_service.database import create_db_engine, migrate
from fraud_service.live import RuleSource, StaticRules, StoreRules
from fraud_service.metrics import FraudMetrics
from fraud_service.rules import rule_set_from_config
from fraud_service.rulesets import to_document
from fraud_service.servicer import FraudServicer
from fraud_service.settings import FraudSettings
from fraud_service.store import FraudStore

log = logging.getLogger("fraud_service")

SERVICE_NAME = fraud_pb2.DESCRIPTOR.services_by_name["FraudService"].full_name
ADMIN_SERVICE_NAME = fraud_pb2.DESCRIPTOR.services_by_name["FraudAdmin"].full_name


def open_store(settings: FraudSettings) -> FraudStore:
    """The migrated store, seeded with the configured rules as version 1 if it is empty."""
    engine = create_db_engine(settings.database_url, pool_size=settings.db_pool_size)
    migrate(engine)
    store = FraudStore(engine)
    seed = rule_set_from_config(settings.rules)
    if store.seed_if_empty(
        document=to_document(seed.rules),
        description=f"seeded from the rules file (rules_version {settings.rules.rules_version})",
    ):
        log_fields(log, "seeded", rules_version=settings.rules.rules_version)
    return store


@dataclass
class FraudServer:
    """A bound, not yet started server, like wallet_service.server.WalletServer."""

    server: grpc.Server
    port: int
    health: HealthServicer
    telemetry: Telemetry
    store: FraudStore | None = None

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float | None = None) -> None:
        self.server.stop(grace).wait()
        self.close()

    def close(self) -> None:
        """Release the store (the server is stopped by `stop` or serve_until_signal)."""
        if self.store is not None:
            self.store.dispose()


def create_server(settings: FraudSettings, telemetry: Telemetry | None = None) -> FraudServer:
    """A ready-to-start server; bind port 0 in tests and read `.port` back. With a store
    (settings.database_url) it is migrated and seeded first, and FraudAdmin is served.
    Pass a `telemetry` to read its metrics and spans (tests do); `serve` starts the scrape
    endpoint of the one it builds from the settings."""
    telemetry = telemetry or build_telemetry("fraud_service", settings.telemetry)
    server, port = build_server(
        address=settings.addr,
        max_workers=settings.max_workers,
        telemetry=telemetry,
        tls=settings.tls,
    )
    store = open_store(settings) if settings.database_url else None
    rules: RuleSource
    services = [SERVICE_NAME]
    if store is None:
        rules = StaticRules(rule_set_from_config(settings.rules))
    else:
        rules = StoreRules(store, cache_seconds=settings.state_cache_seconds)
        rules.current()  # fail at start, not at the first score, if the store is unusable
        fraud_pb2_grpc.add_FraudAdminServicer_to_server(
            FraudAdminServicer(FraudAdmin(store)), server
        )
        services.append(ADMIN_SERVICE_NAME)
    servicer = FraudServicer(rules, FraudMetrics(telemetry.registry))
    fraud_pb2_grpc.add_FraudServiceServicer_to_server(servicer, server)
    health = add_health_and_reflection(server, services)
    return FraudServer(server, port, health, telemetry, store)


def serve(settings: FraudSettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls for `grace_seconds`."""
    fraud = create_server(settings)
    metrics_port = fraud.telemetry.serve_metrics(settings.telemetry)
    log_fields(log, "listening", addr=settings.addr, port=fraud.port, metrics_port=metrics_port)

    def stop() -> None:
        fraud.telemetry.close()
        fraud.close()

    serve_until_signal(
        fraud.server, fraud.health, grace_seconds=settings.grace_seconds, on_stop=stop
    )
