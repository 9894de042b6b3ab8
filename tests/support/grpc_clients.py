"""Client-side helpers for the wallet's gRPC API: users, tokens, money, expected errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.support.servers import ADMIN_PASSWORD, ADMIN_USERNAME
from wallet_client.errors import decode_rpc_error, error_reason

PASSWORD = "correct horse battery"

Metadata = tuple[tuple[str, str], ...]
Stub = wallet_pb2_grpc.WalletServiceStub


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def register(stub: Stub, username: str | None = None, password: str = PASSWORD) -> str:
    name = username or unique_name()
    stub.Register(wallet_pb2.RegisterRequest(username=name, password=password))
    return name


def login(stub: Stub, username: str, password: str = PASSWORD) -> str:
    return stub.Login(wallet_pb2.LoginRequest(username=username, password=password)).access_token


def new_user(stub: Stub) -> tuple[str, Metadata]:
    """Register and log in a fresh user; returns (username, auth metadata)."""
    name = register(stub)
    return name, bearer(login(stub, name))


def admin_auth(stub: Stub) -> Metadata:
    """The bootstrapped admin's auth metadata."""
    return bearer(login(stub, ADMIN_USERNAME, ADMIN_PASSWORD))


def seen_by_admin(stub: Stub, tx_id: str, admin: Metadata | None = None) -> wallet_pb2.Transaction:
    """A transaction as an admin reads it: the fraud assessment and the review are shown to
    admins only. `admin` is an admin's auth metadata (default: the bootstrapped admin's)."""
    request = wallet_pb2.GetTransactionRequest(transaction_id=tx_id)
    return stub.GetTransaction(request, metadata=admin or admin_auth(stub))


def expect_error(call: Callable[[], Any], code: grpc.StatusCode, reason: str) -> grpc.RpcError:
    """`call` fails with `code` and the ErrorInfo `reason`, and says why in words."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert error.code() == code, error.details()  # type: ignore[attr-defined]
    assert error_reason(error) == reason
    assert error.details()  # type: ignore[attr-defined]  # a human message, always
    return error


def retry_delay_seconds(error: grpc.RpcError) -> int | None:
    """The whole seconds of the status's google.rpc.RetryInfo delay, or None without one."""
    delay = decode_rpc_error(error).retry_delay_seconds
    return None if delay is None else int(delay)


@dataclass
class Account:
    """A logged-in user, usable over gRPC (`metadata`) and REST (`auth_header`)."""

    username: str
    user_id: str
    metadata: Metadata
    token: str

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeUser = Callable[[], Account]


def deposit(
    stub: Stub, who: Account, amount: str, currency: str = "USD"
) -> wallet_pb2.MovementResponse:
    return stub.Deposit(
        wallet_pb2.DepositRequest(amount=amount, currency=currency, idempotency_key=_key()),
        metadata=who.metadata,
    )


def transfer(stub: Stub, who: Account, to: Account, amount: str) -> wallet_pb2.MovementResponse:
    return stub.Transfer(
        wallet_pb2.TransferRequest(
            to_username=to.username, amount=amount, currency="USD", idempotency_key=_key()
        ),
        metadata=who.metadata,
    )


def _key() -> str:
    return uuid.uuid4().hex
