"""API4:2023 Unrestricted Resource Consumption: page size capped, body size capped, huge
strings and numbers refused (never a 500), many concurrent connections handled."""

from __future__ import annotations

import concurrent.futures
import uuid

import grpc
import httpx
import pytest
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.support import Account, MakeUser, RunningWallet, Unchanged, deposit, error_reason

MAX_PAGE = 200
HUGE = 100_000


def test_grpc_page_size_is_capped(
    stub: wallet_pb2_grpc.WalletServiceStub, admin: Account, make_user: MakeUser
) -> None:
    user = make_user()
    for _ in range(MAX_PAGE + 5):
        deposit(stub, user, "0.01")
    for limit in (MAX_PAGE + 1, 10_000, 2**31 - 1):
        page = stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(limit=limit), metadata=user.metadata
        )
        assert len(page.transactions) == MAX_PAGE, limit
        assert page.next_cursor
    flagged = stub.ListFlaggedTransactions(
        wallet_pb2.ListFlaggedTransactionsRequest(limit=2**31 - 1), metadata=admin.metadata
    )
    assert len(flagged.transactions) <= MAX_PAGE
    with pytest.raises(grpc.RpcError) as info:
        stub.ListTransactions(wallet_pb2.ListTransactionsRequest(limit=-1), metadata=user.metadata)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_rest_page_size_is_capped(make_user: MakeUser, rest: httpx.Client) -> None:
    user = make_user()
    for limit in ("201", "100000", "99999999999999999999", "-1", "0", "abc"):
        response = rest.get("/transactions", params={"limit": limit}, headers=user.auth_header)
        assert response.status_code == 400, (limit, response.text)


def _rpc_error(call: object, request: object, metadata: object = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, metadata=metadata, timeout=30)  # type: ignore[operator]
    return info.value


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("amount", "9" * HUGE, "invalid_amount"),
        ("amount", "1" + "0" * 40, "invalid_amount"),
        ("amount", "1e999999999", "invalid_amount"),
        ("amount", "0." + "0" * 5000 + "1", "invalid_amount"),
        ("amount", "1000000000000", "amount_too_large"),
        ("currency", "U" * HUGE, "invalid_currency"),
        ("idempotency_key", "k" * HUGE, "invalid_idempotency_key"),
    ],
)
def test_grpc_huge_money_fields_are_refused(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    unchanged: Unchanged,
    field: str,
    value: str,
    reason: str,
) -> None:
    user = make_user()
    fields = {"amount": "1.00", "currency": "USD", "idempotency_key": "huge"} | {field: value}
    with unchanged():
        error = _rpc_error(stub.Deposit, wallet_pb2.DepositRequest(**fields), user.metadata)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == reason


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("u" * HUGE, "long-enough-password", "invalid_username"),
        ("huge_password_user", "p" * HUGE, "invalid_password"),
    ],
    ids=["huge_username", "huge_password"],
)
def test_grpc_huge_credentials_are_refused_cheaply(
    stub: wallet_pb2_grpc.WalletServiceStub,
    unchanged: Unchanged,
    username: str,
    password: str,
    reason: str,
) -> None:
    with unchanged():
        error = _rpc_error(
            stub.Register, wallet_pb2.RegisterRequest(username=username, password=password)
        )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == reason
    with unchanged():
        login = _rpc_error(stub.Login, wallet_pb2.LoginRequest(username=username, password="x"))
    assert login.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT)


def test_grpc_huge_cursor_note_and_message_are_refused(
    stub: wallet_pb2_grpc.WalletServiceStub,
    admin: Account,
    make_user: MakeUser,
    unchanged: Unchanged,
) -> None:
    user = make_user()
    flagged = deposit(stub, user, "20000.00").transaction  # large: flagged for review
    assert flagged.flagged
    with unchanged():
        cursor = _rpc_error(
            stub.ListTransactions,
            wallet_pb2.ListTransactionsRequest(cursor="A" * HUGE),
            user.metadata,
        )
        note = _rpc_error(
            stub.ReviewTransaction,
            wallet_pb2.ReviewTransactionRequest(
                transaction_id=flagged.id, resolution="cleared", note="n" * HUGE
            ),
            admin.metadata,
        )
        # Over gRPC's 4 MiB receive limit: refused before any handler runs.
        oversized = _rpc_error(
            stub.Deposit,
            wallet_pb2.DepositRequest(
                amount="1.00", currency="USD", idempotency_key="x" * 5_000_000
            ),
            user.metadata,
        )
    assert cursor.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(note) == "note_too_long"
    assert oversized.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": 1e400, "currency": "USD"}',
        b'{"amount": 1' + b"0" * 5000 + b', "currency": "USD"}',
        b'{"amount": "' + b"9" * HUGE + b'", "currency": "USD"}',
        b'{"amount": -1, "currency": "USD"}',
        b'{"amount": NaN, "currency": "USD"}',
        b'{"amount": Infinity, "currency": "USD"}',
        b'{"amount": "1.00", "currency": "' + b"U" * HUGE + b'"}',
        b'{"amount": "1.00", "currency": "USD", "x": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b'{"amount": {"$gt": 0}, "currency": "USD"}',
        b'{"amount": ["1.00"], "currency": "USD"}',
        b'{"amount": true, "currency": "USD"}',
        b'{"amount": "1.00", "currency": "USD"' + b" " * 10,
    ],
    ids=lambda b: b[:30].decode(errors="replace"),
)
def test_rest_hostile_numbers_and_strings_are_4xx(
    body: bytes, make_user: MakeUser, rest: httpx.Client, unchanged: Unchanged
) -> None:
    user = make_user()
    with unchanged():
        response = rest.post(
            "/deposit",
            content=body,
            headers={
                **user.auth_header,
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            },
        )
    assert 400 <= response.status_code < 500, response.text[:300]


def test_rest_body_size_is_capped(
    make_user: MakeUser, rest: httpx.Client, unchanged: Unchanged
) -> None:
    user = make_user()
    padding = "x" * (2 * 1024 * 1024)
    with unchanged():
        declared = rest.post(
            "/deposit",
            content=f'{{"amount": "1.00", "currency": "USD", "pad": "{padding}"}}',
            headers={**user.auth_header, "Content-Type": "application/json"},
        )
        chunked = rest.post(
            "/register",
            content=iter([b'{"username": "big", "password": "', padding.encode(), b'"}']),
            headers={"Content-Type": "application/json"},
        )
        long_key = rest.post(
            "/deposit",
            json={"amount": "1.00", "currency": "USD"},
            headers={**user.auth_header, "Idempotency-Key": "k" * 10_000},
        )
    assert declared.status_code == 413, declared.text[:200]
    assert chunked.status_code == 413, chunked.text[:200]
    assert 400 <= long_key.status_code < 500


def test_grpc_many_concurrent_connections(
    wallet: RunningWallet, make_user: MakeUser, stub: wallet_pb2_grpc.WalletServiceStub
) -> None:
    user = make_user()
    deposit(stub, user, "1.00")
    channels = [grpc.insecure_channel(wallet.addr) for _ in range(100)]
    try:

        def call(index: int) -> str:
            chan_stub = wallet_pb2_grpc.WalletServiceStub(channels[index % len(channels)])
            try:
                reply = chan_stub.GetBalance(
                    wallet_pb2.GetBalanceRequest(currency="USD"),
                    metadata=user.metadata,
                    timeout=30,
                )
            except grpc.RpcError as error:
                return error.code().name
            return reply.balance

        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            answers = list(pool.map(call, range(400)))
    finally:
        for channel in channels:
            channel.close()
    # Every call answered: the balance, or at worst an explicit RESOURCE_EXHAUSTED.
    assert set(answers) <= {"1.00", "RESOURCE_EXHAUSTED"}, set(answers)
    assert answers.count("1.00") >= len(answers) // 2
    assert stub.GetBalance(wallet_pb2.GetBalanceRequest(), metadata=user.metadata).balance == "1.00"


def test_rest_many_concurrent_connections(
    gateway_url: str, make_user: MakeUser, stub: wallet_pb2_grpc.WalletServiceStub
) -> None:
    user = make_user()
    deposit(stub, user, "2.00")
    clients = [httpx.Client(base_url=gateway_url, timeout=30) for _ in range(100)]
    try:

        def call(index: int) -> int:
            return clients[index].get("/balance", headers=user.auth_header).status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(call, range(len(clients))))
    finally:
        for client in clients:
            client.close()
    assert set(statuses) <= {200, 429, 503}, statuses
    assert statuses.count(200) >= len(statuses) // 2


def test_rest_long_currency_is_400_not_429(
    make_user: MakeUser, rest: httpx.Client, unchanged: Unchanged
) -> None:
    """A 20 kB currency fits under the body limit; the wallet must answer invalid_currency,
    not echo the input into an error too large for gRPC trailers (seen as a 429)."""
    user = make_user()
    with unchanged():
        response = rest.post(
            "/deposit",
            json={"amount": "1.00", "currency": "U" * 20_000},
            headers={**user.auth_header, "Idempotency-Key": uuid.uuid4().hex},
        )
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["code"] == "invalid_currency"
