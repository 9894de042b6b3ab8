"""Without an exporter, the processes record no spans of their own (nothing would receive
them) but keep every request's trace context; a caller's sampled `traceparent` is honoured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from fraud.v1 import fraud_pb2_grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context
from wallet.v1 import wallet_pb2

from common.telemetry import Telemetry, TelemetrySettings, build_telemetry
from fraud_service.server import create_server
from fraud_service.settings import FraudSettings
from tests.support import (
    new_user,
    score_request,
    start_fraud,
    stub_for,
    wallet_on_sqlite,
)
from tests.support.logs import access_log_lines

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


TRACE_ID, PARENT_ID = f"{SAMPLED_PARENT.trace_id:032x}", f"{SAMPLED_PARENT.span_id:016x}"


def scores_logged(telemetry: Telemetry, *flags: str) -> list[dict[str, Any]]:
    """One Score on a real fraud server per entry of `flags` (a traceparent's flags, ""
    for none); the access log line of each, parsed."""
    built = create_server(FraudSettings(addr="127.0.0.1:0"), telemetry)
    built.start()
    try:
        with (
            access_log_lines() as lines,
            grpc.insecure_channel(f"127.0.0.1:{built.port}") as channel,
        ):
            score = fraud_pb2_grpc.FraudServiceStub(channel).Score
            for flag in flags:
                metadata = (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-{flag}"),)
                score(score_request(100), metadata=metadata if flag else (), timeout=10)
    finally:
        built.stop(None)
    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [entry["method"] for entry in logged] == ["/fraud.v1.FraudService/Score"] * len(flags)
    return logged


def test_a_server_without_an_exporter_keeps_each_requests_trace_in_its_log_line() -> None:
    """The servers' tracing interceptor (common.grpc_server.TracingInterceptor), on a real
    fraud server without an exporter: a request without a traceparent, or with an unsampled
    one, records no span but its access log line carries a trace (the caller's) and a span
    id of its own; a caller's sampled traceparent is recorded in the caller's trace."""
    telemetry = build_telemetry("fraud_service", TelemetrySettings())
    assert telemetry.spans_on_request_only
    received = InMemorySpanExporter()  # added after the build: it does not change the mode
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(received))
    logged = scores_logged(telemetry, "", "00", "01")
    for entry in logged:
        assert len(entry["trace_id"]) == 32 and len(entry["span_id"]) == 16
        assert entry["span_id"] != PARENT_ID
    assert logged[0]["trace_id"] != TRACE_ID  # a trace of its own
    assert [entry["trace_id"] for entry in logged[1:]] == [TRACE_ID, TRACE_ID]
    (recorded,) = received.get_finished_spans()  # only the sampled caller's request
    assert recorded.name == "/fraud.v1.FraudService/Score"
    assert recorded.context is not None
    assert f"{recorded.context.span_id:016x}" == logged[2]["span_id"]
    assert recorded.parent is not None and recorded.parent.span_id == SAMPLED_PARENT.span_id


def test_with_the_sdk_disabled_a_server_makes_no_trace_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_SDK_DISABLED=true makes no ids (README): the servers' interceptor takes no
    shortcut that would; a line only repeats the ids a caller sent."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    telemetry = build_telemetry("fraud_service", TelemetrySettings())
    assert not telemetry.spans_on_request_only
    logged = scores_logged(telemetry, "", "00", "01")
    assert "trace_id" not in logged[0] and "span_id" not in logged[0]
    for entry in logged[1:]:
        assert (entry["trace_id"], entry["span_id"]) == (TRACE_ID, PARENT_ID)


def test_a_wallet_without_an_exporter_continues_its_callers_trace_to_fraud(
    tmp_path: Path,
) -> None:
    """A wallet without an exporter scores under an unrecorded request span without
    OpenTelemetry's client interceptor (wallet_service.fraud_client), and still sends the
    request's trace on: the fraud server's line for the Score carries the trace id of the
    wallet caller's unsampled traceparent, as the wallet's own line does."""
    fraud = start_fraud()
    try:
        with (
            wallet_on_sqlite(tmp_path, f"127.0.0.1:{fraud.port}") as wallet,
            stub_for(wallet) as stub,
        ):
            assert wallet.server.telemetry.spans_on_request_only
            _username, metadata = new_user(stub)
            traced = (*metadata, ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-00"))
            with access_log_lines() as lines:
                stub.Deposit(
                    wallet_pb2.DepositRequest(amount="5.00", currency="USD"), metadata=traced
                )
    finally:
        fraud.stop(None)
    by_method = {entry["method"]: entry for entry in map(json.loads, lines.getvalue().splitlines())}
    for method in ("/wallet.v1.WalletService/Deposit", "/fraud.v1.FraudService/Score"):
        assert by_method[method]["trace_id"] == TRACE_ID, method
    assert by_method["/fraud.v1.FraudService/Score"]["span_id"] not in (
        PARENT_ID,
        by_method["/wallet.v1.WalletService/Deposit"]["span_id"],
    )
