"""Metrics and traces plumbing shared by the three processes.

Each server owns a `Telemetry`: its own Prometheus registry and its own OpenTelemetry tracer
provider (named after the service), passed in explicitly rather than taken from the
libraries' globals, so tests that run the fraud service, the wallet and the gateway in one
interpreter still read each one's own numbers and spans.

Traces: W3C `traceparent` is read and written by the OpenTelemetry instrumentations; every
log line carries the trace and span ids. Spans are recorded and exported when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set (OTLP over HTTP, the exporter reads the standard
`OTEL_EXPORTER_OTLP_*` variables itself); without an exporter only the requests whose caller
sent a sampled `traceparent` are recorded (`OTEL_TRACES_SAMPLER` overrides either way).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from common.config import ConfigError, env_str
from common.logs import log_fields

log = logging.getLogger("telemetry")

# Seconds; covers a sub-millisecond fraud verdict up to a request near its 5 s deadline.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RedMetrics:
    """RED of one kind of request: a counter of answered requests by `labels` and their
    outcome (`outcome_label`: a status code), and a latency histogram by `labels` alone
    (LATENCY_BUCKETS). The gRPC servers and the gateway each declare theirs with this."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        total: tuple[str, str],
        seconds: tuple[str, str],
        labels: Sequence[str],
        outcome_label: str,
    ) -> None:
        """`total` and `seconds` are (metric name, help text) of the counter and histogram."""
        self.requests = Counter(*total, [*labels, outcome_label], registry=registry)
        self.latency = Histogram(*seconds, list(labels), buckets=LATENCY_BUCKETS, registry=registry)

    def observe(self, labels: Sequence[str], outcome: str, seconds: float) -> None:
        self.requests.labels(*labels, outcome).inc()
        self.latency.labels(*labels).observe(seconds)


@dataclass(frozen=True)
class TelemetrySettings:
    """`metrics_port`: None serves no scrape endpoint (the process still counts), 0 picks a
    free port (logged at start), N listens on N."""

    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    otlp_endpoint: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str], port_variable: str | None) -> TelemetrySettings:
        """`port_variable` (e.g. WALLET_METRICS_PORT) wins over the shared METRICS_PORT; None
        for a process that serves its metrics elsewhere (the gateway: GET /metrics)."""
        raw = ""
        if port_variable is not None:
            raw = env.get(port_variable, "").strip() or env.get("METRICS_PORT", "").strip()
        return cls(
            metrics_port=_port(port_variable or "METRICS_PORT", raw) if raw else None,
            metrics_host=env_str(env, "METRICS_HOST", cls.metrics_host),
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip(),
        )


def _port(name: str, raw: str) -> int:
    if not raw.isdigit() or int(raw) > 65535:
        raise ConfigError(f"{name}/METRICS_PORT must be a port number (0 picks one), got {raw!r}")
    return int(raw)


@dataclass
class Telemetry:
    service_name: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    tracer_provider: TracerProvider = field(default_factory=TracerProvider)
    metrics_port: int | None = None  # the bound scrape port, once serve_metrics ran
    # True when only callers' sampled traceparents are recorded (no exporter, no sampler
    # chosen): servers skip the span machinery for every other request.
    spans_on_request_only: bool = False
    _metrics_server: Any = None

    @property
    def tracer(self) -> Tracer:
        return self.tracer_provider.get_tracer(self.service_name)

    def serve_metrics(self, settings: TelemetrySettings) -> int | None:
        """Start the scrape endpoint (a daemon thread) when a port is configured."""
        if settings.metrics_port is None:
            return None
        try:
            server, _thread = start_http_server(
                settings.metrics_port, addr=settings.metrics_host, registry=self.registry
            )
        except OSError as exc:
            raise OSError(
                f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {exc}"
            ) from exc
        self._metrics_server = server
        self.metrics_port = int(server.server_port)
        log_fields(log, "metrics listening", host=settings.metrics_host, port=self.metrics_port)
        return self.metrics_port

    def close(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        self.tracer_provider.shutdown()


def build_telemetry(
    service_name: str,
    settings: TelemetrySettings,
    *,
    span_exporters: Sequence[SpanExporter] = (),
) -> Telemetry:
    """`span_exporters` receive every finished span synchronously (tests pass an in-memory
    one); the OTLP exporter, when configured, gets them in batches off the request path."""
    resource = Resource.create({SERVICE_NAME: service_name})
    exporting = bool(span_exporters) or bool(settings.otlp_endpoint)
    if exporting or os.environ.get("OTEL_TRACES_SAMPLER"):
        provider = TracerProvider(resource=resource)  # the SDK's sampler (or the one chosen)
    else:
        # Nothing would receive a span: record none of our own, but keep each request's
        # trace context (ids in every log line, `traceparent` passed on), and record the
        # requests whose caller asked for sampling. Recording every span with nowhere to
        # send it cost the gateway ~25% of its CPU per request (measured, README).
        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
    for exporter in span_exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The standard variable names the collector's base URL; the HTTP exporter's own
        # argument is the full traces URL.
        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        log_fields(log, "exporting traces", endpoint=settings.otlp_endpoint)
    return Telemetry(
        service_name=service_name,
        tracer_provider=provider,
        # OTEL_SDK_DISABLED=true: no spans and no trace ids at all, OpenTelemetry's own way.
        spans_on_request_only=not exporting
        and not os.environ.get("OTEL_TRACES_SAMPLER")
        and os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true",
    )
