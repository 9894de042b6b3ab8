"""Without an exporter, the processes record no spans of their own (nothing would receive
them) but keep every request's trace context; a caller's sampled `traceparent` is honoured."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from common.telemetry import TelemetrySettings, build_telemetry

SAMPLED_PARENT = SpanContext(
    trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
    span_id=0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
)


@pytest.fixture(autouse=True)
def _no_sampler_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)


def test_without_an_exporter_a_root_span_is_not_recorded_but_has_a_trace_id() -> None:
    telemetry = build_telemetry("svc", TelemetrySettings())
    with telemetry.tracer.start_as_current_span("request") as span:
        assert not span.is_recording()
        assert span.get_span_context().trace_id != 0  # the log lines still carry it


def test_without_an_exporter_a_sampled_caller_is_recorded_in_its_trace() -> None:
    telemetry = build_telemetry("svc", TelemetrySettings())
    parent = set_span_in_context(NonRecordingSpan(SAMPLED_PARENT))
    with telemetry.tracer.start_as_current_span("request", context=parent) as span:
        assert span.is_recording()
        assert span.get_span_context().trace_id == SAMPLED_PARENT.trace_id


def test_with_an_exporter_every_span_is_recorded_and_exported() -> None:
    exporter = InMemorySpanExporter()
    telemetry = build_telemetry("svc", TelemetrySettings(), span_exporters=[exporter])
    with telemetry.tracer.start_as_current_span("request") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["request"]
