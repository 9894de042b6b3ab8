"""Stand-in gRPC servers: any servicer served on loopback with health SERVING, and a fraud
service that holds every Score until released, so a movement stays in flight inside the
wallet for as long as a test wants (drain on SIGTERM, deadlines)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from functools import partial
from typing import Any

import grpc
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


class HeldFraud(fraud_pb2_grpc.FraudServiceServicer):
    """Answers ALLOW, but only once `release` is set (or after `hold_seconds`, a hang guard)."""

    def __init__(self, hold_seconds: float) -> None:
        self.hold_seconds = hold_seconds
        self.scoring = threading.Event()  # set by the first Score that arrives
        self.release = threading.Event()
        self.calls = 0
        self.answered = 0

    def Score(
        self, request: fraud_pb2.ScoreRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.ScoreResponse:
        self.calls += 1
        self.scoring.set()
        self.release.wait(self.hold_seconds)
        self.answered += 1
        return fraud_pb2.ScoreResponse(score=0, decision=fraud_pb2.ALLOW, rules_version="held")


@contextmanager
def serving_standin(add_to_server: Callable[[grpc.Server], Any], service: str) -> Iterator[str]:
    """A server with what `add_to_server` registers, its health `service` SERVING (as the
    wallet's fraud monitor and the gateway's readiness ask); yields its address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_to_server(server)
    health_servicer = health.HealthServicer()
    health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@contextmanager
def held_fraud_server(hold_seconds: float) -> Iterator[tuple[str, HeldFraud]]:
    """A served HeldFraud on a loopback port; released and stopped on exit."""
    fraud = HeldFraud(hold_seconds)
    add = partial(fraud_pb2_grpc.add_FraudServiceServicer_to_server, fraud)
    with serving_standin(add, "fraud.v1.FraudService") as addr:
        try:
            yield addr, fraud
        finally:
            fraud.release.set()  # before the stop, which waits for the held calls
