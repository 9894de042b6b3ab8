"""WalletClient: the generated stubs wrapped for services calling the wallet.

- Money is `Decimal` in and out (sent as its exact text; a float is refused, never rounded).
- Every movement carries an idempotency key (made here unless given) that every retry of
  the call reuses, so a retry after UNAVAILABLE or DEADLINE_EXCEEDED (the reply may have
  been lost after the wallet committed) replays the original instead of moving money twice.
- Every call has a deadline.
- With service credentials the client obtains a token (IssueServiceToken), refreshes it
  before it expires, and once more when the wallet answers it expired or revoked.
- A failure is a `WalletError` with the gRPC code and the ErrorInfo reason
  (wallet_client.errors, the one client-side reading of a wallet error).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import grpc
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from wallet_client.errors import decode_rpc_error

T = TypeVar("T")
RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
STALE_TOKEN = frozenset({"token_expired", "token_revoked"})
REFRESH_MARGIN_SECONDS = 30.0  # refresh this long before the wallet would refuse it


class WalletError(Exception):
    """A refused or failed call: `code` (gRPC), `reason` (the ErrorInfo reason, e.g.
    insufficient_funds; "" for a transport failure), `metadata` (ErrorInfo metadata)."""

    def __init__(
        self, code: grpc.StatusCode, reason: str, message: str, metadata: dict[str, str]
    ) -> None:
        super().__init__(
            f"{code.name} {reason}: {message}" if reason else f"{code.name}: {message}"
        )
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata

    @classmethod
    def of(cls, error: grpc.RpcError) -> WalletError:
        d = decode_rpc_error(error)
        return cls(d.code, d.reason, d.message, d.metadata)


@dataclass(frozen=True)
class ServiceCredentials:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Movement:
    transaction_id: str
    balance: Decimal  # the acted-for user's balance after the movement
    currency: str
    flagged: bool
    replayed: bool  # True when this answer is the stored one of an earlier attempt
    initiated_by_service: str


class WalletClient:
    def __init__(
        self,
        channel: grpc.Channel,
        *,
        credentials: ServiceCredentials | None = None,
        token: str | None = None,
        deadline_seconds: float = 5.0,
        attempts: int = 4,
        backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`credentials` (a service account) or `token` (a bearer token, not refreshed)."""
        self._stub = wallet_pb2_grpc.WalletServiceStub(channel)
        self._credentials = credentials
        self._token = token
        self._token_valid_until = float("inf") if token else 0.0
        self._deadline = deadline_seconds
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._clock = clock

    # -- acting for a user (service accounts) -------------------------------------------

    def deposit_for(
        self, username: str, amount: Decimal, currency: str, *, idempotency_key: str | None = None
    ) -> Movement:
        key = idempotency_key or _new_key()
        request = pb.DepositForRequest(
            username=username, amount=_text(amount), currency=currency, idempotency_key=key
        )
        return _movement(self._call(self._stub.DepositFor, request))

    def withdraw_for(
        self, username: str, amount: Decimal, currency: str, *, idempotency_key: str | None = None
    ) -> Movement:
        key = idempotency_key or _new_key()
        request = pb.WithdrawForRequest(
            username=username, amount=_text(amount), currency=currency, idempotency_key=key
        )
        return _movement(self._call(self._stub.WithdrawFor, request))

    def transfer_for(
        self,
        username: str,
        to_username: str,
        amount: Decimal,
        currency: str,
        *,
        idempotency_key: str | None = None,
    ) -> Movement:
        request = pb.TransferForRequest(
            username=username,
            to_username=to_username,
            amount=_text(amount),
            currency=currency,
            idempotency_key=idempotency_key or _new_key(),
        )
        return _movement(self._call(self._stub.TransferFor, request))

    def balance_for(self, username: str, currency: str = "USD") -> Decimal:
        request = pb.GetBalanceForRequest(username=username, currency=currency)
        return Decimal(self._call(self._stub.GetBalanceFor, request).balance)

    # -- the call: deadline, token, retries with the same request -------------------------

    def _call(self, method: Callable[..., T], request: Any) -> T:
        """Every attempt sends the very same request (so the same idempotency key)."""
        refreshed = False
        for attempt in range(1, self._attempts + 1):
            try:
                return method(request, metadata=self._auth(), timeout=self._deadline)
            except grpc.RpcError as exc:
                error = WalletError.of(exc)
            if error.reason in STALE_TOKEN and self._credentials and not refreshed:
                self._token_valid_until, refreshed = 0.0, True  # once: a revoked one stays so
                continue
            if error.code not in RETRIED or attempt == self._attempts:
                raise error
            self._sleep(self._backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _auth(self) -> tuple[tuple[str, str], ...]:
        if self._credentials is not None and self._clock() >= self._token_valid_until:
            self._refresh()
        return (("authorization", f"Bearer {self._token}"),) if self._token else ()

    def _refresh(self) -> None:
        assert self._credentials is not None
        request = pb.IssueServiceTokenRequest(
            client_id=self._credentials.client_id, client_secret=self._credentials.client_secret
        )
        try:
            reply = self._stub.IssueServiceToken(request, timeout=self._deadline)
        except grpc.RpcError as exc:
            raise WalletError.of(exc) from exc
        self._token = reply.access_token
        self._token_valid_until = self._clock() + max(
            reply.expires_in - REFRESH_MARGIN_SECONDS, 0.0
        )


def _text(amount: Decimal) -> str:
    if not isinstance(amount, Decimal):  # a float would already have lost the cents
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    return format(amount, "f")


def _new_key() -> str:
    return str(uuid.uuid4())


def _movement(reply: pb.MovementResponse) -> Movement:
    tx = reply.transaction
    return Movement(
        transaction_id=tx.id,
        balance=Decimal(reply.balance),
        currency=tx.currency,
        flagged=tx.flagged,
        replayed=reply.replayed,
        initiated_by_service=tx.initiated_by_service,
    )
