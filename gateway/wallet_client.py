"""The gateway's one gRPC channel to the wallet: stubs, per-call metadata and deadline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

import grpc
from fraud.v1 import fraud_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters
from opentelemetry.trace import TracerProvider
from wallet.v1 import wallet_pb2_grpc

from common.request_context import REQUEST_ID_HEADER
from common.tls import TlsSettings, channel_credentials

WALLET_SERVICE = "wallet.v1.WalletService"

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")

_CHANNEL_OPTIONS = (("grpc.service_config", '{"loadBalancingConfig": [{"round_robin": {}}]}'),)
# gRPC ASCII metadata values must be printable ASCII; anything else would fail the call locally.
_METADATA_VALUE = re.compile(r"^[\x20-\x7e]*$")


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as the gateway knows: passed on to the wallet as metadata."""

    request_id: str
    authorization: str | None = None
    client_ip: str | None = None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        items = [(REQUEST_ID_HEADER, self.request_id)]
        if self.authorization:
            items.append(("authorization", self.authorization))
        if self.client_ip and _METADATA_VALUE.fullmatch(self.client_ip):
            items.append(("x-forwarded-for", self.client_ip))
        return tuple(items)


def is_valid_metadata_value(value: str) -> bool:
    return bool(_METADATA_VALUE.fullmatch(value))


class WalletClient:
    """Owns the channel (one per process); create it inside the running event loop."""

    def __init__(
        self,
        address: str,
        *,
        timeout_seconds: float,
        ready_timeout_seconds: float,
        tracer_provider: TracerProvider | None = None,
        tls: TlsSettings | None = None,
    ):
        # round_robin spreads calls over every address the target resolves to, so
        # `dns:///wallet:50051` balances across wallet replicas (one address: no change).
        # The tracing interceptors make each call a client span and send `traceparent`.
        interceptors = aio_client_interceptors(
            tracer_provider=tracer_provider,
            filter_=filters.negate(filters.service_name("grpc.health.v1.Health")),
        )
        credentials = channel_credentials(tls or TlsSettings())
        self._channel = (
            grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS, interceptors=interceptors)
            if credentials is None
            else grpc.aio.secure_channel(
                address, credentials, options=_CHANNEL_OPTIONS, interceptors=interceptors
            )
        )
        self.stub = wallet_pb2_grpc.WalletServiceStub(self._channel)
        # Served by the wallet for its admins and forwarded to the fraud service.
        self.fraud_admin = fraud_pb2_grpc.FraudAdminStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout_seconds
        self._ready_timeout = ready_timeout_seconds

    async def call(
        self,
        rpc: grpc.aio.UnaryUnaryMultiCallable[RequestT, ResponseT],
        request: RequestT,
        caller: Caller,
    ) -> ResponseT:
        """Invoke `rpc` with the caller's metadata and the deadline; AioRpcError on failure."""
        return await rpc(request, timeout=self._timeout, metadata=caller.metadata())

    async def is_serving(self) -> bool:
        """True when the wallet answers grpc.health.v1 Check with SERVING in time."""
        request = health_pb2.HealthCheckRequest(service=WALLET_SERVICE)
        try:
            reply = await self._health.Check(request, timeout=self._ready_timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        await self._channel.close(grace=None)
