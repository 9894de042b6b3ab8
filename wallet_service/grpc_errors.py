"""The one place where wallet errors become gRPC statuses.

Every status carries a google.rpc.ErrorInfo with the stable `code` as `reason`, so
clients (the gateway among them) branch on codes, never on message text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from common.grpc_server import UnaryBehavior, UnaryInterceptor
from wallet_service.errors import ErrorKind, WalletError

log = logging.getLogger(__name__)

ERROR_DOMAIN = "wallet"

_STATUS_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    ErrorKind.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    ErrorKind.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    ErrorKind.NOT_FOUND: code_pb2.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    ErrorKind.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    ErrorKind.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    ErrorKind.UNAVAILABLE: code_pb2.UNAVAILABLE,
}


def abort(
    context: grpc.ServicerContext,
    code: int,
    reason: str,
    message: str,
    details: dict[str, str] | None = None,
    retry_after_seconds: int | None = None,
) -> NoReturn:
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=details or {})
    )
    packed = [info]
    if retry_after_seconds is not None:
        # The standard detail clients (and the gateway's Retry-After) read the delay from.
        retry = any_pb2.Any()
        retry.Pack(
            error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=max(1, retry_after_seconds))
            )
        )
        packed.append(retry)
    status = status_pb2.Status(code=code, message=message, details=packed)
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")  # it raises; this tells mypy


def abort_with(context: grpc.ServicerContext, error: WalletError) -> NoReturn:
    abort(
        context,
        _STATUS_BY_KIND[error.kind],
        error.code,
        error.message,
        error.details,
        error.retry_after_seconds,
    )


def status_name(error: WalletError) -> str:
    """The gRPC status name of `error` ("FAILED_PRECONDITION"), for a bulk item's result."""
    return str(code_pb2.Code.Name(_STATUS_BY_KIND[error.kind]))


class ErrorMappingInterceptor(UnaryInterceptor):
    """Maps WalletError to its status; anything unexpected is logged and becomes INTERNAL
    with a generic message, so no internals leak to clients. `on_error` sees each mapped
    error with its method (metrics count login failures there)."""

    def __init__(self, on_error: Callable[[str, WalletError], None] | None = None) -> None:
        self._on_error = on_error

    def around(
        self, inner: UnaryBehavior, request: Any, context: grpc.ServicerContext, method: str
    ) -> Any:
        try:
            return inner(request, context)
        except WalletError as error:
            if self._on_error is not None:
                self._on_error(method, error)
            abort_with(context, error)
        except Exception:
            if context.code() is not None:  # type: ignore[attr-defined]
                raise  # already aborted with a deliberate status
            log.exception("unexpected error in %s", method)
            abort(context, code_pb2.INTERNAL, "internal", "Internal error")
