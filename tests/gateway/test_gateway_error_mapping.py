"""The gRPC -> HTTP mapping over real HTTP and real gRPC, against a scripted wallet stand-in.

The stand-in answers each call with a chosen status (with or without ErrorInfo), holds a
call until the test releases it (past any deadline), or records what it received, so
every row of the mapping and the metadata the gateway sends are checked without depending
on wallet business rules.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from gateway.errors import HTTP_STATUS_BY_GRPC
from tests.support import (
    GatewayThread,
    assert_error,
    gateway_settings,
    running_gateway,
    serving_standin,
)

AUTH = {"Authorization": "Bearer t0ken"}


def _abort(
    context: grpc.ServicerContext, code: grpc.StatusCode, message: str, *details: Any
) -> None:
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    context.abort_with_status(rpc_status.to_status(status))


def _info(reason: str, domain: str = "wallet") -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=domain)


# Only a hang guard: the held call normally ends when its test releases it.
HOLD_CEILING_SECONDS = 120.0


class ScriptedWallet(wallet_pb2_grpc.WalletServiceServicer):
    def __init__(self) -> None:
        self.received: list[tuple[Any, dict[str, str]]] = []
        self.release = threading.Event()

    def _record(self, request: Any, context: grpc.ServicerContext) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.received.append((request, metadata))

    def GetTransaction(self, request: Any, context: grpc.ServicerContext) -> Any:
        # The id names the status to answer with: "<CODE>" or "<CODE>:bare" (no ErrorInfo).
        name, _, variant = request.transaction_id.partition(":")
        code = grpc.StatusCode[name]
        if variant == "bare":
            context.abort(code, f"bare {name.lower()}")
        elif variant == "foreign":
            _abort(context, code, "from elsewhere", _info("some_reason", domain="other"))
        else:
            _abort(context, code, f"Message for {name}", _info(f"reason_{name.lower()}"))

    def Login(self, request: Any, context: grpc.ServicerContext) -> Any:
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=30))
        _abort(
            context,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Too many attempts",
            _info("too_many_attempts"),
            retry,
        )

    def GetBalance(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise RuntimeError("boom: secret internals")  # grpc turns this into UNKNOWN

    def ListBalances(self, request: Any, context: grpc.ServicerContext) -> Any:
        # Held until the test has seen the gateway give up: past its deadline by
        # construction, however slow the machine.
        self.release.wait(HOLD_CEILING_SECONDS)
        return wallet_pb2.ListBalancesResponse()

    def Deposit(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record(request, context)
        tx = wallet_pb2.Transaction(id="tx-1", type="deposit", amount=request.amount, flagged=True)
        return wallet_pb2.MovementResponse(transaction=tx, balance="10.10", replayed=True)


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[tuple[ScriptedWallet, str]]:
    wallet = ScriptedWallet()  # type: ignore[abstract]  # answers only what the tests call
    add = partial(wallet_pb2_grpc.add_WalletServiceServicer_to_server, wallet)
    with serving_standin(add, "wallet.v1.WalletService") as addr:
        try:
            yield wallet, addr
        finally:
            wallet.release.set()  # before the stop, which waits for held calls


@pytest.fixture(scope="module")
def scripted(scripted_server: tuple[ScriptedWallet, str]) -> Iterator[tuple[ScriptedWallet, str]]:
    """A gateway with the ordinary (generous) deadline in front of the stand-in."""
    wallet, addr = scripted_server
    with running_gateway(addr) as url:
        yield wallet, url


@pytest.fixture
def client(scripted: tuple[ScriptedWallet, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scripted[1], timeout=10, headers=AUTH) as c:
        yield c


@pytest.mark.parametrize(("code", "http_status"), list(HTTP_STATUS_BY_GRPC.items()))
def test_each_mapped_status_keeps_the_wallet_reason_and_message(
    client: httpx.Client, code: grpc.StatusCode, http_status: int
) -> None:
    response = client.get(f"/transactions/{code.name}")
    assert_error(response, http_status, f"reason_{code.name.lower()}", f"Message for {code.name}")


def test_without_error_info_the_code_comes_from_the_status_name(client: httpx.Client) -> None:
    response = client.get("/transactions/NOT_FOUND:bare")
    assert_error(response, 404, "not_found", "bare not_found")
    # ErrorInfo of another domain is not the wallet's code.
    response = client.get("/transactions/ALREADY_EXISTS:foreign")
    assert_error(response, 409, "already_exists", "from elsewhere")


@pytest.mark.parametrize("code", ["INTERNAL", "UNKNOWN", "UNIMPLEMENTED", "DATA_LOSS", "ABORTED"])
def test_unmapped_statuses_are_a_generic_500(client: httpx.Client, code: str) -> None:
    response = client.get(f"/transactions/{code}")
    assert_error(response, 500, "internal", "Internal server error")


def test_a_crash_in_the_wallet_leaks_nothing(client: httpx.Client) -> None:
    response = client.get("/balance")
    assert_error(response, 500, "internal", "Internal server error")
    assert "boom" not in response.text


def test_a_slow_wallet_is_504(scripted_server: tuple[ScriptedWallet, str]) -> None:
    # Only this test needs a short deadline; the stand-in holds the call until released.
    wallet, addr = scripted_server
    gateway = GatewayThread(gateway_settings(addr, rpc_timeout_seconds=0.3))
    gateway.start()
    try:
        with httpx.Client(base_url=gateway.url, timeout=60, headers=AUTH) as client:
            response = client.get("/balances")
    finally:
        wallet.release.set()
        gateway.stop()
    assert_error(response, 504, "deadline_exceeded", "Wallet service did not answer in time")


def test_wallet_429_carries_retry_after_from_retry_info(client: httpx.Client) -> None:
    response = client.post("/login", json={"username": "a", "password": "b"})
    assert_error(response, 429, "too_many_attempts", "Too many attempts")
    assert response.headers["retry-after"] == "30"


def test_readyz_is_200_when_the_wallet_is_serving(client: httpx.Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.parametrize(
    ("raw_amount", "forwarded"),
    [
        (b"10.10", "10.10"),
        (b"10", "10"),
        (b"0.1", "0.1"),
        (b"12345678901234567.89", "12345678901234567.89"),
        (b"1E2", "100"),
        (b"1.5e-3", "0.0015"),
        (b"-5", "-5"),
        (b'"10.10"', "10.10"),
        (b'"abc"', "abc"),  # a string goes as is: the wallet judges it
    ],
)
def test_amounts_are_forwarded_exactly_with_caller_metadata(
    scripted: tuple[ScriptedWallet, str], raw_amount: bytes, forwarded: str
) -> None:
    wallet, url = scripted
    body = b'{"amount": ' + raw_amount + b', "currency": "EUR"}'
    headers = {
        **AUTH,
        "Content-Type": "application/json",
        "Idempotency-Key": "key-1",
        "X-Request-ID": "req-amount-1",
    }
    response = httpx.post(f"{url}/deposit", content=body, headers=headers)
    assert response.status_code == 201
    assert response.json() == {
        "msg": "Deposit successful",
        "transaction_id": "tx-1",
        "flagged": True,
        "balance": "10.10",
        "replayed": True,
    }
    request, metadata = wallet.received[-1]
    assert (request.amount, request.currency, request.idempotency_key) == (
        forwarded,
        "EUR",
        "key-1",
    )
    assert metadata["authorization"] == "Bearer t0ken"
    assert metadata["x-request-id"] == "req-amount-1"
    assert metadata["x-forwarded-for"] == "127.0.0.1"


def test_the_mapping_table_is_the_designed_one() -> None:
    assert {code.name: status for code, status in HTTP_STATUS_BY_GRPC.items()} == {
        "INVALID_ARGUMENT": 400,
        "UNAUTHENTICATED": 401,
        "PERMISSION_DENIED": 403,
        "NOT_FOUND": 404,
        "ALREADY_EXISTS": 409,
        "FAILED_PRECONDITION": 422,
        "RESOURCE_EXHAUSTED": 429,
        "UNAVAILABLE": 503,
        "DEADLINE_EXCEEDED": 504,
    }
    assert grpc.StatusCode.UNAVAILABLE.value[0] == code_pb2.UNAVAILABLE
