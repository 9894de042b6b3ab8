"""gRPC server plumbing shared by wallet_service and fraud_service.

Every server gets: a tracing interceptor (OpenTelemetry: continues the caller's W3C trace
context), RED metrics per method (Prometheus), a request-id + structured access-log
interceptor, the standard `grpc.health.v1` service, server reflection, and a graceful stop
on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import server_interceptor
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry

from common.logs import log_fields
from common.request_context import REQUEST_ID_HEADER, accept_request_id, request_id_var
from common.telemetry import RedMetrics, Telemetry
from common.tls import TlsSettings, server_credentials

log = logging.getLogger("grpc.access")

UnaryBehavior = Callable[[Any, grpc.ServicerContext], Any]

# grpc-stubs makes the interceptor generic; the runtime class is not subscriptable.
if TYPE_CHECKING:
    ServerInterceptorBase = grpc.ServerInterceptor[Any, Any]
    # What an interceptor's `continuation` is: the next lookup of a method's handler.
    HandlerLookup = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None]
else:
    ServerInterceptorBase = grpc.ServerInterceptor


def metadata_value(context: grpc.ServicerContext, key: str) -> str | None:
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value.decode() if isinstance(value, bytes) else value
    return None


def wrap_unary_handler(
    handler: grpc.RpcMethodHandler[Any, Any] | None,
    wrap: Callable[[UnaryBehavior], UnaryBehavior],
) -> grpc.RpcMethodHandler[Any, Any] | None:
    """Return `handler` with its unary-unary behaviour wrapped; other kinds pass through."""
    if handler is None or handler.unary_unary is None:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        wrap(handler.unary_unary),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class UnaryInterceptor(ServerInterceptorBase):
    """A server interceptor that runs `around` each call of a unary-unary method.

    Subclasses say which methods they apply to (`applies_to`, default all) and what happens
    around a call (`around`, which calls `inner(request, context)` to go on). Streaming
    methods, unknown methods and methods not applied to pass through untouched."""

    def applies_to(self, method: str) -> bool:
        return True

    def around(
        self, inner: UnaryBehavior, request: Any, context: grpc.ServicerContext, method: str
    ) -> Any:
        raise NotImplementedError

    def intercept_service(
        self, continuation: HandlerLookup, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        if not self.applies_to(method):
            return handler

        def wrap(inner: UnaryBehavior) -> UnaryBehavior:
            def behavior(request: Any, context: grpc.ServicerContext) -> Any:
                return self.around(inner, request, context, method)

            return behavior

        return wrap_unary_handler(handler, wrap)


class AccessLogInterceptor(UnaryInterceptor):
    """Binds the caller's `x-request-id` (or a new one) and logs one line per call."""

    def around(
        self, inner: UnaryBehavior, request: Any, context: grpc.ServicerContext, method: str
    ) -> Any:
        request_id = accept_request_id(metadata_value(context, REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            return inner(request, context)
        finally:
            code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
            log_fields(
                log,
                "rpc",
                method=method,
                code=code.name if isinstance(code, grpc.StatusCode) else str(code),
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                peer=context.peer(),
            )
            request_id_var.reset(token)


class RpcMetricsInterceptor(UnaryInterceptor):
    """RED per method: calls by final status code and their latency. Labels are bounded: only
    registered methods reach a handler (an unknown method is not wrapped)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._red = RedMetrics(
            registry,
            total=(
                "grpc_server_handled_total",
                "RPCs completed, by service, method and status code",
            ),
            seconds=(
                "grpc_server_handling_seconds",
                "Time to answer an RPC, by service and method",
            ),
            labels=("grpc_service", "grpc_method"),
            outcome_label="grpc_code",
        )

    def around(
        self, inner: UnaryBehavior, request: Any, context: grpc.ServicerContext, method: str
    ) -> Any:
        service, _, name = method.lstrip("/").rpartition("/")
        started = time.perf_counter()
        failed = True
        try:
            reply = inner(request, context)
            failed = False
            return reply
        finally:
            code = context.code()  # type: ignore[attr-defined]
            if code is None:
                code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
            code_name = code.name if isinstance(code, grpc.StatusCode) else str(code)
            self._red.observe((service, name), code_name, time.perf_counter() - started)


# Health probes and reflection are polled constantly: spans of them would bury the real ones.
UNTRACED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class TracingInterceptor(ServerInterceptorBase):
    """OpenTelemetry's server interceptor, only where a span can be recorded.

    Without an exporter (and without OTEL_TRACES_SAMPLER) a process records only requests
    whose caller sent a sampled `traceparent` (common.telemetry). For every other request
    OpenTelemetry's interceptor would still build span attributes, start a non-recording
    span and wrap the servicer context: about a fifth of the fraud service's CPU per Score
    (bench/README.md). Such a request gets only what its log lines and its downstream calls
    need: the caller's trace continued (or a new trace) under a span id of its own, as the
    SDK's sampler would have made it, attached while a unary handler runs. Health and
    reflection calls are not traced at all (the filter is a prefix test, not OpenTelemetry's
    per-call filter chain)."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._otel = server_interceptor(tracer_provider=telemetry.tracer_provider)
        self._record_all = not telemetry.spans_on_request_only
        ids = getattr(telemetry.tracer_provider, "id_generator", None)
        self._ids: IdGenerator = ids if isinstance(ids, IdGenerator) else RandomIdGenerator()

    def intercept_service(
        self,
        continuation: HandlerLookup,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        if handler_call_details.method.startswith(UNTRACED_PREFIXES):
            return continuation(handler_call_details)
        if self._record_all:
            return self._recorded(continuation, handler_call_details)
        metadata = handler_call_details.invocation_metadata or ()
        parent = extract(dict(metadata))
        caller = trace.get_current_span(parent).get_span_context()
        handler = continuation(handler_call_details)
        if (caller.is_valid and caller.trace_flags.sampled) or (
            handler is not None and handler.unary_unary is None
        ):
            return self._recorded(lambda _details: handler, handler_call_details)
        own = SpanContext(
            trace_id=caller.trace_id if caller.is_valid else self._ids.generate_trace_id(),
            span_id=self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
            trace_state=caller.trace_state if caller.is_valid else None,
        )
        traced = trace.set_span_in_context(NonRecordingSpan(own), parent)

        def wrap(inner: UnaryBehavior) -> UnaryBehavior:
            def behavior(request: Any, context: grpc.ServicerContext) -> Any:
                token = otel_context.attach(traced)
                try:
                    return inner(request, context)
                finally:
                    otel_context.detach(token)

            return behavior

        return wrap_unary_handler(handler, wrap)

    def _recorded(
        self,
        continuation: HandlerLookup,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler: grpc.RpcMethodHandler[Any, Any] | None = self._otel.intercept_service(
            continuation, handler_call_details
        )
        return handler


def build_server(
    *,
    address: str,
    max_workers: int,
    telemetry: Telemetry,
    interceptors: Sequence[grpc.ServerInterceptor[Any, Any]] = (),
    reuse_port: bool = False,
    tls: TlsSettings | None = None,
) -> tuple[grpc.Server, int]:
    """Create a server bound to `address` (port 0 picks a free one); returns the real port.
    `reuse_port`: several processes share the port (SO_REUSEPORT, the kernel spreads the
    connections); off by default, so a second server on a busy port fails clearly.
    `tls`: serve TLS (mTLS with a CA) when it holds a certificate; plaintext otherwise.

    Interceptors run outermost first: the trace span encloses the metrics and the access
    log line, so that line carries the trace id."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        interceptors=[
            TracingInterceptor(telemetry),
            RpcMetricsInterceptor(telemetry.registry),
            AccessLogInterceptor(),
            *interceptors,
        ],
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
        maximum_concurrent_rpcs=max_workers * 8,
    )
    credentials = server_credentials(tls or TlsSettings())
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpcio raises (rather than returning 0) on a busy port
        raise OSError(f"cannot bind gRPC server to {address}: {exc}") from exc
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    return server, port


def add_health_and_reflection(
    server: grpc.Server, service_names: Sequence[str]
) -> health.HealthServicer:
    """Register grpc.health.v1 (overall + per service) and reflection for `service_names`."""
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return health_servicer


def serve_until_signal(
    server: grpc.Server,
    health_servicer: health.HealthServicer,
    *,
    grace_seconds: float,
    on_stop: Callable[[], None] | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT, then report NOT_SERVING, drain in-flight calls and return.
    `on_started` runs once the server listens (and the signal handlers are in place).

    Only the first signal starts the stop; a repeated one (an impatient operator, a
    supervisor that repeats SIGTERM) is logged and changes nothing: the drain goes on and
    the exit code stays 0. Once drained, both signals are ignored, because the interpreter
    restores the default (fatal) action of Python-handled signals while it shuts down, and
    a late SIGTERM there would turn a clean exit into -15. SIGKILL is the way to cut a
    drain short.
    """
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log_fields(log, "still draining", signal=name)
            return
        log_fields(log, "stopping", signal=name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    if on_started is not None:
        on_started()
    _wait_handling_signals(stop)
    health_servicer.enter_graceful_shutdown()
    _wait_handling_signals(server.stop(grace_seconds))
    if on_stop is not None:
        on_stop()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log_fields(log, "stopped")


def _wait_handling_signals(event: threading.Event) -> None:
    """Wait for `event`, waking now and then: a Python signal handler runs only when the
    main thread runs bytecode, and a signal the kernel handed to another thread (it does
    when the main thread already has one pending) would not wake a plain `wait()`."""
    while not event.wait(0.1):
        pass
