"""The one client-side reading of a failed gRPC call: status code, message, and the rich
details the wallet attaches (`google.rpc.ErrorInfo` reason, domain and metadata; the
`google.rpc.RetryInfo` delay).

Works for sync (`grpc.RpcError`) and asyncio (`grpc.aio.AioRpcError`) errors alike: both
carry the packed `google.rpc.Status` in the `grpc-status-details-bin` trailer. Part of the
installable client package (it imports nothing of this repository), and the one reading in
the repository too: WalletClient, the gateway's error mapping, the bench, the chaos
workload and the tests use it. The server side of the same contract is
wallet_service/grpc_errors.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class RpcErrorDetails:
    """What a client can know about a failed call; empty strings where nothing was sent."""

    code: grpc.StatusCode
    message: str
    reason: str = ""  # ErrorInfo.reason: the stable machine code (insufficient_funds, ...)
    domain: str = ""  # ErrorInfo.domain: who defined the reason ("wallet")
    metadata: dict[str, str] = field(default_factory=dict)  # ErrorInfo.metadata
    retry_delay_seconds: float | None = None  # RetryInfo.retry_delay, when sent


def decode_rpc_error(error: grpc.RpcError) -> RpcErrorDetails:
    """Read `error` whatever it carries; a transport error simply has no reason."""
    code = _call(error, "code") or grpc.StatusCode.UNKNOWN
    message = _call(error, "details") or ""
    status = rich_status(error)
    details = tuple(status.details) if status is not None else ()
    info = _unpack_first(details, error_details_pb2.ErrorInfo)
    retry = _unpack_first(details, error_details_pb2.RetryInfo)
    delay = None
    if retry is not None and retry.HasField("retry_delay"):
        delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return RpcErrorDetails(
        code=code,
        message=str(message),
        reason=str(info.reason) if info is not None else "",
        domain=str(info.domain) if info is not None else "",
        metadata=dict(info.metadata) if info is not None else {},
        retry_delay_seconds=delay,
    )


def error_reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of `error`, or "" when it carries none."""
    return decode_rpc_error(error).reason


def rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The `google.rpc.Status` from the trailers, or None (absent or undecodable)."""
    # grpc.aio yields (key, value) tuples here; grpc-stubs types them as sync-API objects.
    trailers: Iterable[tuple[str, str | bytes]] = cast(Any, _call(error, "trailing_metadata")) or ()
    for key, value in trailers:
        if key == DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def _call(error: grpc.RpcError, method: str) -> Any:
    # A bare grpc.RpcError (not a grpc.Call) has none of these methods.
    getter = getattr(error, method, None)
    return getter() if callable(getter) else None


def _unpack_first(details: Iterable[Any], kind: type[Any]) -> Any:
    for detail in details:
        message = kind()
        if detail.Unpack(message):
            return message
    return None
