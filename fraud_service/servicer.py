"""gRPC adapters. Score: ScoreRequest -> rules dataclasses -> evaluate_rule_set with the
live rule set and lists -> ScoreResponse. FraudAdmin: proto <-> fraud_service.admin."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import grpc
from fraud.v1 import fraud_pb2, fraud_pb2_grpc

from common.logs import log_fields
from common.records import build
from fraud_service.live import Compiled, RuleSource
from fraud_service.metrics import FraudMetrics
from fraud_service.rules import (
    Decision,
    Features,
    InvalidInput,
    Movement,
    MovementType,
    Verdict,
    evaluate_rule_set,
)

log = logging.getLogger("fraud_service.score")

MAX_BATCH_ITEMS = 1000  # the wallet's CreateTransfers limit

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


def movement_time(occurred_at: str) -> datetime:
    """When the movement happens (the wallet's clock), for snoozes; now if not given."""
    try:
        parsed = datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def features_from_proto(message: fraud_pb2.Features) -> Features:
    return build(
        Features, message, recent_day_amounts_minor=tuple(message.recent_day_amounts_minor)
    )


def verdict_to_proto(verdict: Verdict, version: int | None) -> fraud_pb2.ScoreResponse:
    return fraud_pb2.ScoreResponse(
        score=verdict.score,
        decision=_DECISIONS[verdict.decision],
        reasons=[
            fraud_pb2.Reason(rule_id=hit.rule_id, description=hit.description, score=hit.score)
            for hit in verdict.reasons
        ],
        rules_version=verdict.rules_version,
        rule_set_version=version or 0,
    )


class FraudServicer(fraud_pb2_grpc.FraudServiceServicer):
    def __init__(self, rules: RuleSource, metrics: FraudMetrics | None = None) -> None:
        self._rules = rules
        self._metrics = metrics

    def Score(
        self, request: fraud_pb2.ScoreRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.ScoreResponse:
        try:
            return self._score(request, self._rules.current())
        except InvalidInput as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    def ScoreBatch(
        self, request: fraud_pb2.ScoreBatchRequest, context: grpc.ServicerContext
    ) -> fraud_pb2.ScoreBatchResponse:
        """Each item by the same rules as Score; the caller folded earlier items of the
        same sender into later items' features, so the service stays stateless. The live
        rule set is read once: every item of a batch is judged by the same version."""
        if len(request.items) > MAX_BATCH_ITEMS:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_BATCH_ITEMS} items per batch"
            )
        live = self._rules.current()
        verdicts = []
        for index, item in enumerate(request.items):
            try:
                verdicts.append(self._score(item, live))
            except InvalidInput as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"items[{index}]: {exc}")
        return fraud_pb2.ScoreBatchResponse(verdicts=verdicts)

    def _score(self, request: fraud_pb2.ScoreRequest, live: Compiled) -> fraud_pb2.ScoreResponse:
        movement = movement_from_proto(request.movement)
        features = features_from_proto(request.features)
        lists = live.lists.match(
            username=request.movement.username,
            counterparty=request.movement.counterparty_username,
            now=movement_time(request.movement.occurred_at),
        )
        started = time.perf_counter()
        verdict = evaluate_rule_set(movement, features, live.rule_set, lists)
        if self._metrics is not None:
            self._metrics.verdict(verdict, time.perf_counter() - started)
        if log.isEnabledFor(logging.DEBUG):  # the fields are built only when logged
            log_fields(
                log,
                "scored",
                logging.DEBUG,
                score=verdict.score,
                decision=verdict.decision.name,
                rules=[hit.rule_id for hit in verdict.reasons],
                rules_version=verdict.rules_version,
            )
        return verdict_to_proto(verdict, live.version)
