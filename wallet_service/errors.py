"""Domain errors with stable machine-readable codes.

The domain raises these; `wallet_service.grpc_errors` is the one place that maps
them to gRPC status codes. `kind` names the class of failure without importing grpc.
"""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    INVALID_ARGUMENT = "invalid_argument"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"


class WalletError(Exception):
    """Base of every expected failure; `code` is stable API, `message` is for humans."""

    kind: ErrorKind = ErrorKind.FAILED_PRECONDITION

    def __init__(self, code: str, message: str, **details: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details  # extra machine-readable facts, e.g. a transaction id
        self.retry_after_seconds: int | None = None


class InvalidArgument(WalletError):
    kind = ErrorKind.INVALID_ARGUMENT


class Unauthenticated(WalletError):
    kind = ErrorKind.UNAUTHENTICATED


class PermissionDenied(WalletError):
    kind = ErrorKind.PERMISSION_DENIED


class NotFound(WalletError):
    kind = ErrorKind.NOT_FOUND


class AlreadyExists(WalletError):
    kind = ErrorKind.ALREADY_EXISTS


class FailedPrecondition(WalletError):
    kind = ErrorKind.FAILED_PRECONDITION


class ResourceExhausted(WalletError):
    """Over a limit; the caller may retry after `retry_after_seconds` (sent as RetryInfo,
    and kept in the ErrorInfo metadata for clients that read only that)."""

    kind = ErrorKind.RESOURCE_EXHAUSTED

    def __init__(self, code: str, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(code, message, retry_after_seconds=str(retry_after_seconds))
        self.retry_after_seconds = retry_after_seconds


class Unavailable(WalletError):
    kind = ErrorKind.UNAVAILABLE
