"""The real gRPC server on a loopback port, called through the generated stub."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from fraud_service.rules import Decision, FraudConfig, VelocitySettings
from fraud_service.server import FraudServer, create_server
from fraud_service.settings import FraudSettings
from tests.support import score_request

StartServer = Callable[[FraudConfig], grpc.Channel]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Starts servers with the given rules on 127.0.0.1:0; stops them after the test."""
    running: list[tuple[FraudServer, grpc.Channel]] = []

    def start(config: FraudConfig) -> grpc.Channel:
        settings = FraudSettings(addr="127.0.0.1:0", max_workers=2, rules=config)
        server = create_server(settings)
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        running.append((server, channel))
        return channel

    yield start
    for server, channel in running:
        channel.close()
        server.stop(grace=None)


@pytest.fixture
def channel(start_server: StartServer) -> grpc.Channel:
    return start_server(FraudConfig(rules_version="test-1"))


def score(channel: grpc.Channel, request: fraud_pb2.ScoreRequest) -> fraud_pb2.ScoreResponse:
    stub = fraud_pb2_grpc.FraudServiceStub(channel)
    return stub.Score(request, timeout=5, metadata=(("x-request-id", "fraud-test-1"),))


def test_ordinary_movement_is_allowed(channel: grpc.Channel) -> None:
    reply = score(channel, score_request(999_999))
    assert reply.decision == fraud_pb2.ALLOW
    assert reply.score == 0
    assert list(reply.reasons) == []
    assert reply.rules_version == "test-1"


def test_large_amount_is_reviewed_with_its_reason(channel: grpc.Channel) -> None:
    reply = score(channel, score_request(1_000_000))
    assert reply.decision == fraud_pb2.REVIEW
    assert reply.score == 50
    assert [(r.rule_id, r.score) for r in reply.reasons] == [("large_amount", 50)]
    assert reply.reasons[0].description == (
        "amount 10000.00 USD is at or above the 10000 USD threshold"
    )


def test_jpy_is_scored_by_its_exponent(channel: grpc.Channel) -> None:
    assert score(channel, score_request(9_999, currency="JPY", exponent=0)).score == 0
    assert score(channel, score_request(10_000, currency="JPY", exponent=0)).score == 50


def test_a_rule_configured_to_block_blocks(start_server: StartServer) -> None:
    config = FraudConfig(velocity=VelocitySettings(decision=Decision.BLOCK))
    reply = score(start_server(config), score_request(100, count_last_hour=9))
    assert reply.decision == fraud_pb2.BLOCK
    assert [r.rule_id for r in reply.reasons] == ["velocity"]


@pytest.mark.parametrize(
    ("request_changes", "message"),
    [
        ({"amount_minor": 0}, "amount_minor must be positive"),
        ({"currency_exponent": 9}, "currency_exponent must be between 0 and 6"),
        ({"type": "reversal"}, "movement.type must be one of deposit, withdrawal, transfer"),
        ({"currency": ""}, "currency is required"),
    ],
)
def test_nonsense_is_invalid_argument(
    channel: grpc.Channel, request_changes: dict[str, object], message: str
) -> None:
    request = score_request(100)
    for field, value in request_changes.items():
        setattr(request.movement, field, value)
    with pytest.raises(grpc.RpcError) as raised:
        score(channel, request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (raised.value.details() or "")


def test_negative_feature_is_invalid_argument(channel: grpc.Channel) -> None:
    request = score_request(100)
    request.features.count_last_day = -1
    with pytest.raises(grpc.RpcError) as raised:
        score(channel, request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("service", ["", "fraud.v1.FraudService"])
def test_health_reports_serving(channel: grpc.Channel, service: str) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_fraud_service(channel: grpc.Channel) -> None:
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"fraud.v1.FraudService", "grpc.health.v1.Health"} <= services


def test_score_batch_answers_each_item_as_score_does(channel: grpc.Channel) -> None:
    stub = fraud_pb2_grpc.FraudServiceStub(channel)
    items = [
        score_request(100),
        score_request(1_000_000),  # large amount
        score_request(100, count_last_hour=50),  # velocity
    ]
    batch = stub.ScoreBatch(fraud_pb2.ScoreBatchRequest(items=items), timeout=5)
    assert list(batch.verdicts) == [score(channel, item) for item in items]
    assert [v.decision for v in batch.verdicts] == [
        fraud_pb2.ALLOW,
        fraud_pb2.REVIEW,
        fraud_pb2.REVIEW,
    ]


def test_score_batch_refuses_a_bad_item_by_index(channel: grpc.Channel) -> None:
    stub = fraud_pb2_grpc.FraudServiceStub(channel)
    items = [score_request(100), score_request(100, movement_type="gift")]
    with pytest.raises(grpc.RpcError) as refused:
        stub.ScoreBatch(fraud_pb2.ScoreBatchRequest(items=items), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "items[1]" in (refused.value.details() or "")
    too_many = [score_request(100)] * 1001
    with pytest.raises(grpc.RpcError) as large:
        stub.ScoreBatch(fraud_pb2.ScoreBatchRequest(items=too_many), timeout=5)
    assert large.value.code() == grpc.StatusCode.INVALID_ARGUMENT
