"""Small client-side helpers shared by the test suites (they talk to real servers)."""

from __future__ import annotations

import uuid

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

PASSWORD = "correct horse battery"


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def register(
    stub: wallet_pb2_grpc.WalletServiceStub, username: str | None = None, password: str = PASSWORD
) -> str:
    name = username or unique_name()
    stub.Register(wallet_pb2.RegisterRequest(username=name, password=password))
    return name


def login(stub: wallet_pb2_grpc.WalletServiceStub, username: str, password: str = PASSWORD) -> str:
    return stub.Login(wallet_pb2.LoginRequest(username=username, password=password)).access_token


def new_user(stub: wallet_pb2_grpc.WalletServiceStub) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Register and log in a fresh user; returns (username, auth metadata)."""
    name = register(stub)
    return name, bearer(login(stub, name))


def error_reason(error: grpc.RpcError) -> str:
    """The stable machine-readable code from the status's google.rpc.ErrorInfo."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status on {error}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    raise AssertionError(f"no ErrorInfo on {error}")


def retry_delay_seconds(error: grpc.RpcError) -> int | None:
    """The delay from the status's google.rpc.RetryInfo, or None without one."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return int(info.retry_delay.seconds)
    return None
