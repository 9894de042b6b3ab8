"""gRPC adapter: ScoreRequest -> rules dataclasses -> evaluate -> ScoreResponse."""

from __future__ import annotations

import logging
import time

import grpc
from fraud.v1 import fraud_pb2, fraud_pb2_grpc

from common.logs import log_fields
from fraud_service.metrics import FraudMetrics
from fraud_service.rules import (
    Decision,
    Features,
    FraudConfig,
    InvalidInput,
    Movement,
    MovementType,
    Verdict,
    evaluate,
)

log = logging.getLogger("fraud_service.score")

_DECISIONS = {
    Decision.ALLOW: fraud_pb2.ALLOW,
    Decision.REVIEW: fraud_pb2.REVIEW,
    Decision.BLOCK: fraud_pb2.BLOCK,
}


def movement_from_proto(message: fraud_pb2.Movement) -> Movement:
    try:
        movement_type = MovementType(message.type)
    except ValueError:
        allowed = ", ".join(MovementType)
        raise InvalidInput(
            f"movement.type must be one of {allowed}, got {message.type!r}"
        ) from None
    return Movement(
        type=movement_type,
        amount_minor=message.amount_minor,
        currency=message.currency,
        currency_exponent=message.currency_exponent,
    )


def features_from_proto(message: fraud_pb2.Features) -> Features:
    return Features(
        account_age_seconds=message.account_age_seconds,
        count_last_hour=message.count_last_hour,
        sum_last_hour_minor=message.sum_last_hour_minor,
        count_last_day=message.count_last_day,
        sum_last_day_minor=message.sum_last_day_minor,
        recent_day_amounts_minor=tuple(message.recent_day_amounts_minor),
        distinct_counterparties_last_day=message.distinct_counterparties_last_day,
        balance_minor=message.balance_minor,
    )


def verdict_to_proto(verdict: Verdict) -> fraud_pb2.ScoreResponse:
    return fraud_pb2.ScoreResponse(
        score=verdict.score,
        decision=_DECISIONS[verdict.decision],
        reasons=[
            fraud_pb2.Reason(rule_id=hit.rule_id, description=hit.description, score=hit.score)
            for hit in verdict.reasons
        ],
        rules_version=verdict.rules_version,
    )


class FraudServicer(fraud_pb2_grpc.FraudServiceServicer):
    def __init__(self, config: FraudConfig, metrics: FraudMetrics | None = None) -> None:
        self._config = config
        self._metrics = metrics

    def Score(
        self, request: fraud_pb2.ScoreRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.ScoreResponse:
        try:
            movement = movement_from_proto(request.movement)
            features = features_from_proto(request.features)
        except InvalidInput as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        started = time.perf_counter()
        verdict = evaluate(movement, features, self._config)
        if self._metrics is not None:
            self._metrics.verdict(verdict, time.perf_counter() - started)
        log_fields(
            log,
            "scored",
            logging.DEBUG,
            score=verdict.score,
            decision=verdict.decision.name,
            rules=[hit.rule_id for hit in verdict.reasons],
        )
        return verdict_to_proto(verdict)
