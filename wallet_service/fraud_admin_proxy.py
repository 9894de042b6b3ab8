"""fraud.v1.FraudAdmin, reachable through the wallet by the wallet's admins only.

Why a generic forward rather than admin RPCs of the wallet's own: the fraud service owns
its rules, lists and their contract (protos/fraud/v1/fraud.proto); the wallet owns who
may call what. So the wallet serves the `fraud.v1.FraudAdmin` service on its own port by
forwarding each call's bytes, unchanged, to the fraud service, after the one auth check
(`AuthInterceptor`, the bearer token read against the database) and the admin role check
(`WalletService.require_admin`). A new FraudAdmin RPC needs no wallet change, and nothing
else reaches the fraud port (it is internal, like the wallet's database). The admin's
name travels as `x-actor` metadata and is recorded by the fraud service as who created,
activated or listed what; the request id travels too.

The fraud service's answer is passed back as is; its errors keep their status, message
and ErrorInfo reason and metadata (e.g. `invalid_rule_set`, field `rules[0].kind`), re-issued
by the wallet's one error mapping (`grpc_errors.abort`), so clients and the gateway see
one error domain. An unreachable fraud service is `UNAVAILABLE` / `fraud_unavailable`.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from fraud.v1 import fraud_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.request_context import REQUEST_ID_HEADER, current_request_id
from common.tls import TlsSettings
from common.tls import channel as tls_channel
from wallet_service.auth_interceptor import current_user
from wallet_service.errors import Unavailable
from wallet_service.grpc_errors import abort
from wallet_service.service import WalletService

SERVICE = fraud_pb2.DESCRIPTOR.services_by_name["FraudAdmin"]
PREFIX = f"/{SERVICE.full_name}/"
METHODS = frozenset(PREFIX + method.name for method in SERVICE.methods)
ACTOR_HEADER = "x-actor"
# Admin calls are not on the money path; a generous deadline when the caller set none.
DEFAULT_TIMEOUT_SECONDS = 10.0


class FraudAdminProxy(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def __init__(
        self, service: WalletService, fraud_address: str, tls: TlsSettings | None = None
    ) -> None:
        self._service = service
        self._channel = tls_channel(fraud_address, tls or TlsSettings()) if fraud_address else None

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        if method not in METHODS:
            return None

        def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
            caller = current_user()
            self._service.require_admin(caller)
            return self._forward(method, request, context, actor=caller.username)

        # No (de)serializers: the bytes go through untouched.
        return grpc.unary_unary_rpc_method_handler(forward)

    def _forward(
        self, method: str, request: bytes, context: grpc.ServicerContext, *, actor: str
    ) -> bytes:
        if self._channel is None:
            raise Unavailable("fraud_unavailable", "No fraud service is configured (FRAUD_ADDR)")
        remaining = context.time_remaining()
        timeout = DEFAULT_TIMEOUT_SECONDS if remaining is None else max(0.0, remaining)
        call = self._channel.unary_unary(method, None, None)
        try:
            reply: bytes = call(
                request,
                timeout=min(timeout, DEFAULT_TIMEOUT_SECONDS),
                metadata=((REQUEST_ID_HEADER, current_request_id()), (ACTOR_HEADER, actor)),
            )
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(
                    "fraud_unavailable", f"The fraud service did not answer: {code.name}"
                ) from exc
            _reissue(context, exc)
        return reply

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


def _reissue(context: grpc.ServicerContext, error: grpc.RpcError) -> NoReturn:
    code = error.code()  # type: ignore[attr-defined]
    message = error.details() or code.name  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.reason:
            abort(context, code.value[0], info.reason, message, dict(info.metadata))
    abort(context, code.value[0], code.name.lower(), message)
