"""`Scorer` over gRPC: asks fraud_service with a deadline and passes the request id on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import grpc
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import client_interceptor, filters, grpcext
from opentelemetry.trace import TracerProvider

from common.records import build
from common.request_context import REQUEST_ID_HEADER, current_request_id
from common.tls import TlsSettings, channel
from wallet_service.errors import InvalidArgument, NotFound, Unavailable, WalletError
from wallet_service.models import Decision, FraudReason, FraudVerdict, iso_utc
from wallet_service.scoring import (
    BacktestItem,
    BacktestReport,
    RuleBacktest,
    ScoreInput,
    ScorerUnavailable,
    SnoozeInput,
    SnoozeRefused,
)

# A review waits for its snooze to be recorded; generous, it is not on the money path.
SNOOZE_TIMEOUT_SECONDS = 5.0

log = logging.getLogger(__name__)

BATCH_ITEM_SECONDS = 0.001
# fraud.v1.FraudAdmin/Backtest takes at most this many items per call.
BACKTEST_CHUNK = 1000  # added to the fraud deadline per item of a ScoreBatch

_DECISIONS = {
    fraud_pb2.ALLOW: Decision.ALLOW,
    fraud_pb2.REVIEW: Decision.REVIEW,
    fraud_pb2.BLOCK: Decision.BLOCK,
}


# Called with the call's outcome ("ok" or the gRPC code's name) and its duration in seconds.
CallObserver = Callable[[str, float], None]


def _ignore(_outcome: str, _seconds: float) -> None:
    return None


class GrpcFraudScorer:
    def __init__(
        self,
        address: str,
        *,
        timeout_seconds: float,
        tls: TlsSettings | None = None,
        tracer_provider: TracerProvider | None = None,
        observe: CallObserver = _ignore,
    ) -> None:
        # The health monitor polls over this same channel, so it checks the TLS hop too.
        self._channel = channel(address, tls or TlsSettings())
        # The Score call becomes a client span and carries `traceparent` to the fraud service
        # (health polls are left out: they belong to no request).
        traced = grpcext.intercept_channel(
            self._channel,
            client_interceptor(
                tracer_provider=tracer_provider,
                filter_=filters.negate(filters.service_name("grpc.health.v1.Health")),
            ),
        )
        self._stub = fraud_pb2_grpc.FraudServiceStub(traced)
        self._admin = fraud_pb2_grpc.FraudAdminStub(traced)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout_seconds
        self._observe = observe

    def score(self, movement: ScoreInput) -> FraudVerdict:
        started = time.perf_counter()
        try:
            reply = self._stub.Score(
                _request(movement),
                timeout=self._timeout,
                metadata=((REQUEST_ID_HEADER, current_request_id()),),
            )
        except grpc.RpcError as exc:
            self._observe(exc.code().name, time.perf_counter() - started)
            raise ScorerUnavailable(f"fraud service: {exc.code().name}") from exc
        self._observe("ok", time.perf_counter() - started)
        return _verdict(reply)

    def score_batch(self, movements: Sequence[ScoreInput]) -> list[FraudVerdict]:
        """One ScoreBatch call; its deadline grows by BATCH_ITEM_SECONDS per item (the
        fraud service's work grows with the batch, its latency budget should too)."""
        if not movements:
            return []
        try:
            reply = self._stub.ScoreBatch(
                fraud_pb2.ScoreBatchRequest(items=[_request(m) for m in movements]),
                timeout=self._timeout + BATCH_ITEM_SECONDS * len(movements),
                metadata=((REQUEST_ID_HEADER, current_request_id()),),
            )
        except grpc.RpcError as exc:
            raise ScorerUnavailable(f"fraud service: {exc.code().name}") from exc
        if len(reply.verdicts) != len(movements):
            raise ScorerUnavailable("fraud service answered a different number of verdicts")
        return [_verdict(v) for v in reply.verdicts]

    def snooze(self, request: SnoozeInput) -> None:
        message = fraud_pb2.SnoozeRulesRequest(
            username=request.username,
            rules=list(request.rule_ids),
            days=request.days,
            transaction_id=request.transaction_id,
            note=request.note,
        )
        metadata = ((REQUEST_ID_HEADER, current_request_id()), ("x-actor", request.actor))
        try:
            self._admin.SnoozeRules(message, timeout=SNOOZE_TIMEOUT_SECONDS, metadata=metadata)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:  # type: ignore[attr-defined]
                raise SnoozeRefused(exc.details() or "snooze refused") from exc  # type: ignore[attr-defined]
            raise ScorerUnavailable(f"fraud service: {exc.code().name}") from exc  # type: ignore[attr-defined]

    def backtest(
        self, version: int, items: Sequence[BacktestItem], *, timeout_seconds: float
    ) -> BacktestReport:
        """Chunks of BACKTEST_CHUNK items, one Backtest call each, all within one
        deadline; the chunks' reports add up to the range's."""
        deadline = time.monotonic() + timeout_seconds
        report = BacktestReport(version=version)
        for start in range(0, max(len(items), 1), BACKTEST_CHUNK):
            chunk = items[start : start + BACKTEST_CHUNK]
            request = fraud_pb2.BacktestRequest(
                version=version, items=[_backtest_item(item) for item in chunk]
            )
            try:
                reply = self._admin.Backtest(
                    request,
                    timeout=max(0.0, deadline - time.monotonic()),
                    metadata=((REQUEST_ID_HEADER, current_request_id()),),
                )
            except grpc.RpcError as exc:
                raise _backtest_error(exc) from exc
            report = report + _report(reply)
        return report

    def is_serving(self) -> bool:
        try:
            reply = self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def close(self) -> None:
        self._channel.close()


def _verdict(reply: fraud_pb2.ScoreResponse) -> FraudVerdict:
    decision = _DECISIONS.get(reply.decision)
    if decision is None:  # a contract violation is treated like an outage, never as ALLOW
        raise ScorerUnavailable(f"fraud service returned decision {reply.decision}")
    return FraudVerdict(
        score=max(0, min(100, reply.score)),
        decision=decision,
        reasons=tuple(FraudReason(r.rule_id, r.description) for r in reply.reasons),
        rules_version=reply.rules_version,
    )


def _backtest_item(item: BacktestItem) -> fraud_pb2.BacktestItem:
    return fraud_pb2.BacktestItem(
        request=_request(item.movement),
        live_decision=item.live_decision,
        live_rule_ids=list(item.live_rule_ids),
        review_status=item.review_status,
    )


def _report(reply: fraud_pb2.BacktestReport) -> BacktestReport:
    return build(BacktestReport, reply, rules=tuple(build(RuleBacktest, r) for r in reply.rules))


def _backtest_error(exc: grpc.RpcError) -> WalletError:
    code = exc.code()  # type: ignore[attr-defined]
    details = exc.details() or code.name  # type: ignore[attr-defined]
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound("rule_set_not_found", details)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument("invalid_argument", details)
    return Unavailable("fraud_unavailable", f"The fraud service did not answer: {code.name}")


def _request(movement: ScoreInput) -> fraud_pb2.ScoreRequest:
    return fraud_pb2.ScoreRequest(
        movement=fraud_pb2.Movement(
            type=movement.type.value,
            amount_minor=movement.amount_minor,
            currency=movement.currency,
            currency_exponent=movement.currency_exponent,
            user_id=movement.user_id,
            counterparty_id=movement.counterparty_id or "",
            occurred_at=iso_utc(movement.occurred_at),
            username=movement.username,
            counterparty_username=movement.counterparty_username,
        ),
        features=build(fraud_pb2.Features, movement.features),
    )


class FraudReachabilityMonitor:
    """Polls fraud_service's health so the wallet's own health tells whether it can score."""

    def __init__(
        self,
        scorer: GrpcFraudScorer,
        on_change: Callable[[bool], None],
        *,
        interval_seconds: float = 2.0,
    ) -> None:
        self._scorer = scorer
        self._on_change = on_change
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fraud-health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        last: bool | None = None
        while not self._stop.is_set():
            serving = self._scorer.is_serving()
            if serving != last:
                log.info("fraud service %s", "reachable" if serving else "unreachable")
                self._on_change(serving)
                last = serving
            self._stop.wait(self._interval)
