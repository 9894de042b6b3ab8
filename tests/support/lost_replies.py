"""A client-side stand-in for a network that loses replies: the call reaches the real
wallet and is processed, then the caller sees UNAVAILABLE instead of the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class LostReply(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """What a caller sees when the connection drops after the server answered."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection lost before the reply arrived (simulated)"

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def initial_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class LoseReplies(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc, type-arg]
    """Lets the first `count` calls of `method` complete on the server, then raises
    LostReply in their place; counts every call it sees in `calls`."""

    def __init__(self, method: str, count: int = 1) -> None:
        self.method = method
        self.remaining = count
        self.calls = 0

    def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        outcome = continuation(client_call_details, request)
        if client_call_details.method.endswith("/" + self.method):
            self.calls += 1
            if self.remaining > 0:
                outcome.result()  # the wallet has processed it (or raises its own error)
                self.remaining -= 1
                raise LostReply()
        return outcome
