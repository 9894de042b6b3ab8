"""The wallet's own metrics and spans, kept at its edges: a writer decorator (movements and
amounts), the group-commit observer (batch sizes, commit latency, the batch span), a hook
of the error mapping (login failures and lockouts), the rate limiter's refusals and the
database pool. The use cases and the ledger know none of this.

Label values are bounded by the code (movement types, currencies the wallet supports,
error codes, limit names), never a user or a transaction id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common.telemetry import LATENCY_BUCKETS, Telemetry
from wallet_service.errors import WalletError
from wallet_service.group_commit import MovementWriter
from wallet_service.models import Decision, MovementOutcome, MovementPlan, TxStatus

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_LOGIN_FAILURES = {"invalid_credentials": "invalid_credentials", "too_many_attempts": "locked"}


class OutboxCollector(Collector):
    """`wallet_outbox_events{status}`: the outbox's rows by status, counted in the database
    at scrape time (pending = the delivery backlog, dead = the dead letters)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "wallet_outbox_events",
            "Outbox events by status (pending: not yet delivered; dead: gave up)",
            labels=["status"],
        )
        counts = self._counts()
        for status in ("pending", "sent", "dead"):
            family.add_metric([status], counts.get(status, 0))
        yield family


class WalletMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self.movements = Counter(
            "wallet_movements_total",
            "Money movements that reached the writer, by type, currency and outcome "
            "(completed, blocked, replayed, refused) and the refusal's error code",
            ["type", "currency", "outcome", "reason"],
            registry=registry,
        )
        self.moved = Counter(
            "wallet_moved_minor_units_total",
            "Amounts of completed movements, in the currency's minor units",
            ["type", "currency"],
            registry=registry,
        )
        self.unscored = Counter(
            "wallet_fraud_fail_open_total",
            "Movements completed unscored because the fraud service was down or late",
            ["type"],
            registry=registry,
        )
        self.fraud_calls = Histogram(
            "wallet_fraud_call_seconds",
            "Time to get a verdict from the fraud service, by outcome (ok, or the gRPC code)",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "wallet_group_commit_batch_size",
            "Movements written by one database transaction",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "wallet_group_commit_seconds",
            "Time to write and commit one batch of movements",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.login_failures = Counter(
            "wallet_login_failures_total",
            "Refused logins and password checks: invalid_credentials, or locked (lockout)",
            ["reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "wallet_rate_limit_refusals_total",
            "Calls refused by a wallet rate limit, by limit",
            ["limit"],
            registry=registry,
        )
        self.pool_in_use = Gauge(
            "wallet_db_pool_connections_in_use",
            "Database connections checked out of the pool",
            registry=registry,
        )
        self.pool_capacity = Gauge(
            "wallet_db_pool_connections_max",
            "Connections the pool may hold (pool size plus overflow)",
            registry=registry,
        )

    def watch_pool(self, in_use: Callable[[], float], capacity: int) -> None:
        """Read at scrape time, so the number is current and costs nothing per request."""
        self.pool_in_use.set_function(in_use)
        self.pool_capacity.set(capacity)

    def watch_outbox(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._registry.register(OutboxCollector(counts))

    def error(self, method: str, error: WalletError) -> None:
        """Hook of the error mapping: every refused call passes here with its code."""
        reason = _LOGIN_FAILURES.get(error.code)
        if reason and method.endswith(("/Login", "/ChangePassword")):
            self.login_failures.labels(reason).inc()

    def refused(self, limit: str) -> None:
        self.rate_limited.labels(limit).inc()

    def movement(self, plan: MovementPlan, outcome: MovementOutcome) -> None:
        kind, currency = plan.type.value, plan.currency
        if outcome.replayed:
            self.movements.labels(kind, currency, "replayed", "").inc()
        elif outcome.transaction.status is TxStatus.REJECTED:
            self.movements.labels(kind, currency, "blocked", "").inc()
        else:
            self.movements.labels(kind, currency, "completed", "").inc()
            self.moved.labels(kind, currency).inc(plan.amount_minor)
            if plan.verdict is not None and plan.verdict.decision is Decision.UNSCORED:
                self.unscored.labels(kind).inc()

    def movement_refused(self, plan: MovementPlan, error: WalletError) -> None:
        self.movements.labels(plan.type.value, plan.currency, "refused", error.code).inc()


class InstrumentedWriter:
    """A MovementWriter that counts what the writer it wraps decided."""

    def __init__(self, inner: MovementWriter, metrics: WalletMetrics) -> None:
        self.inner = inner  # the configured writer (group commit or direct)
        self._inner = inner
        self._metrics = metrics

    def apply(self, plan: MovementPlan) -> MovementOutcome:
        try:
            outcome = self._inner.apply(plan)
        except WalletError as error:
            self._metrics.movement_refused(plan, error)
            raise
        self._metrics.movement(plan, outcome)
        return outcome

    @property
    def overlapped(self) -> int:
        return self._inner.overlapped

    def close(self) -> None:
        self._inner.close()


class CommitTelemetry:
    """The group-commit observer: one span per batch (a child of the first caller's span,
    linked to every caller's), its size and its commit latency."""

    def __init__(self, telemetry: Telemetry, metrics: WalletMetrics) -> None:
        self._tracer = telemetry.tracer
        self._metrics = metrics

    def capture(self) -> object:
        return otel_context.get_current()

    def batch(self, size: int, callers: Sequence[object]) -> AbstractContextManager[object]:
        return self._batch(size, callers)

    @contextmanager
    def _batch(self, size: int, callers: Sequence[object]) -> Iterator[object]:
        contexts = [c for c in callers if isinstance(c, otel_context.Context)]
        links = [
            trace.Link(span.get_span_context())
            for span in (trace.get_current_span(c) for c in contexts)
            if span.get_span_context().is_valid
        ]
        parent = contexts[0] if contexts else None
        self._metrics.batch_size.observe(size)
        started = time.perf_counter()
        with self._tracer.start_as_current_span(
            "db.write_batch", context=parent, links=links, attributes={"batch.size": size}
        ) as span:
            try:
                yield span
            finally:
                self._metrics.commit_seconds.observe(time.perf_counter() - started)
