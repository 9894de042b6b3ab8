"""The one place that authenticates wallet RPCs.

Every WalletService method except Register and Login, and every fraud.v1.FraudAdmin
method the wallet forwards (wallet_service/fraud_admin_proxy.py), needs `authorization: Bearer
<jwt>` metadata. The user is loaded from the database on each call (so deletion or
demotion takes effect at once) and bound to a context variable for the servicer.
Health and reflection are left open on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import grpc

from common.grpc_server import UnaryBehavior, UnaryInterceptor, metadata_value
from wallet_service.errors import PermissionDenied, Unauthenticated
from wallet_service.models import ServiceAccount, User

SERVICE_PREFIX = "/wallet.v1.WalletService/"
PUBLIC_METHODS = frozenset(
    {SERVICE_PREFIX + "Register", SERVICE_PREFIX + "Login", SERVICE_PREFIX + "IssueServiceToken"}
)
AUTHENTICATED_PREFIXES = (SERVICE_PREFIX, "/fraud.v1.FraudAdmin/")

Caller = User | ServiceAccount
_current_user: ContextVar[Caller | None] = ContextVar("current_user", default=None)


def _caller() -> Caller:
    caller = _current_user.get()
    if caller is None:  # a method slipped past the interceptor: refuse rather than guess
        raise Unauthenticated("token_missing", "Authentication required")
    return caller


def current_user() -> User:
    """The user calling; a service token cannot act as a user (it uses the ...For RPCs)."""
    caller = _caller()
    if not isinstance(caller, User):
        raise PermissionDenied("user_token_required", "This method needs a user's token")
    return caller


def current_service() -> ServiceAccount:
    """The service account calling; a user's token can never call a ...For RPC."""
    caller = _caller()
    if not isinstance(caller, ServiceAccount):
        raise PermissionDenied("service_token_required", "This method needs a service token")
    return caller


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthenticated("token_missing", "Missing authorization metadata (Bearer token)")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("token_invalid", "Authorization must be 'Bearer <token>'")
    return token.strip()


class AuthInterceptor(UnaryInterceptor):
    def __init__(self, authenticate: Callable[[str], Caller]) -> None:
        self._authenticate = authenticate

    def applies_to(self, method: str) -> bool:
        return method.startswith(AUTHENTICATED_PREFIXES) and method not in PUBLIC_METHODS

    def around(
        self, inner: UnaryBehavior, request: Any, context: grpc.ServicerContext, method: str
    ) -> Any:
        token = bearer_token(metadata_value(context, "authorization"))
        bound = _current_user.set(self._authenticate(token))
        try:
            return inner(request, context)
        finally:
            _current_user.reset(bound)
