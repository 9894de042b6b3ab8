"""API4:2023 Unrestricted Resource Consumption: page size capped, body size capped, huge
strings and numbers refused (never a 500), many concurrent connections handled, and request
limits: registration and login per client address (gateway and wallet, the wallet seeing the
real client behind the gateway), money calls per user (not per token), 429 with Retry-After."""

from __future__ import annotations

import concurrent.futures
import uuid

import grpc
import httpx
import pytest
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from gateway.settings import RateLimit
from tests.support import (
    PASSWORD,
    Account,
    MakeUser,
    RunningWallet,
    StartGateway,
    StartWallet,
    Stub,
    Unchanged,
    bearer,
    deposit,
    error_reason,
    login,
    retry_delay_seconds,
    stub_for,
    unique_name,
)

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


# -- request limits ----------------------------------------------------------------------------

FORWARDED = "x-forwarded-for"


def _register(stub: Stub, forwarded_for: str | None = None) -> str:
    """ "ok" or the error reason, sending `x-forwarded-for` when given."""
    metadata = ((FORWARDED, forwarded_for),) if forwarded_for else None
    request = wallet_pb2.RegisterRequest(username=unique_name(), password=PASSWORD)
    try:
        stub.Register(request, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        return error_reason(error)
    return "ok"


def test_grpc_register_is_limited_per_peer_and_the_header_is_ignored_from_untrusted_peers(
    start_limited_wallet: StartWallet,
) -> None:
    limited = start_limited_wallet(
        WALLET_REGISTER_RATE_LIMIT_PER_PEER="3", WALLET_TRUSTED_PROXIES=""
    )
    with stub_for(limited) as stub:
        answers = [_register(stub, forwarded_for=f"203.0.113.{i}") for i in range(5)]
        assert answers == ["ok"] * 3 + ["rate_limited"] * 2
        with pytest.raises(grpc.RpcError) as refused:
            stub.Register(wallet_pb2.RegisterRequest(username=unique_name(), password=PASSWORD))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    delay = retry_delay_seconds(refused.value)
    assert delay is not None and 1 <= delay <= 3600


def test_grpc_login_is_limited_per_peer(
    start_limited_wallet: StartWallet,
) -> None:
    limited = start_limited_wallet(WALLET_LOGIN_RATE_LIMIT_PER_PEER="4")
    with stub_for(limited) as stub:
        names = [unique_name() for _ in range(6)]  # a different name each time: no lockout

        def attempt(name: str) -> str:
            try:
                stub.Login(wallet_pb2.LoginRequest(username=name, password="wrong-password"))
            except grpc.RpcError as error:
                return error_reason(error)
            return "ok"

        answers = [attempt(name) for name in names]
    assert answers == ["invalid_credentials"] * 4 + ["rate_limited"] * 2


def test_a_trusted_proxy_names_the_client_it_stands_for(
    start_limited_wallet: StartWallet,
) -> None:
    """Loopback (the gateway in `make run`) is trusted by default: each client behind it has
    its own allowance, instead of every browser sharing the gateway's."""
    limited = start_limited_wallet(WALLET_REGISTER_RATE_LIMIT_PER_PEER="2")
    with stub_for(limited) as stub:
        first = [_register(stub, forwarded_for="198.51.100.1") for _ in range(3)]
        second = [_register(stub, forwarded_for="198.51.100.2") for _ in range(2)]
    assert first == ["ok", "ok", "rate_limited"]
    assert second == ["ok", "ok"]


def test_rest_register_limit_in_the_wallet_applies_to_the_client_behind_the_gateway(
    start_limited_wallet: StartWallet, start_gateway: StartGateway
) -> None:
    """The gateway's own limits are relaxed: the 429 comes from the wallet, per browser
    address as the gateway saw it, with Retry-After from the wallet's RetryInfo."""
    limited = start_limited_wallet(WALLET_REGISTER_RATE_LIMIT_PER_PEER="2")
    # The test client poses as a proxy in front of the gateway, to play two browsers.
    url = start_gateway(limited.addr, forwarded_allow_ips="127.0.0.1")

    def register_from(client: httpx.Client, browser: str) -> httpx.Response:
        body = {"username": unique_name(), "password": PASSWORD}
        return client.post("/register", json=body, headers={"X-Forwarded-For": browser})

    with httpx.Client(base_url=url, timeout=30) as client:
        statuses = [register_from(client, "192.0.2.10").status_code for _ in range(2)]
        refused = register_from(client, "192.0.2.10")
        other = register_from(client, "192.0.2.11")
    assert statuses == [201, 201]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert other.status_code == 201


def test_rest_register_is_limited_per_ip_in_the_gateway(
    start_gateway: StartGateway, wallet: RunningWallet, unchanged: Unchanged
) -> None:
    url = start_gateway(wallet.addr, register_per_ip=RateLimit(limit=2, window_seconds=3600))
    with httpx.Client(base_url=url, timeout=30) as client:
        bodies = [{"username": unique_name(), "password": PASSWORD} for _ in range(3)]
        assert [client.post("/register", json=b).status_code for b in bodies[:2]] == [201, 201]
        with unchanged():  # refused before the wallet: no user, no argon2 hash
            refused = client.post("/register", json=bodies[2])
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1


def _deposit_answer(stub: Stub, metadata: tuple[tuple[str, str], ...], key: str) -> str:
    request = wallet_pb2.DepositRequest(amount="1.00", currency="USD", idempotency_key=key)
    try:
        reply = stub.Deposit(request, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        return error_reason(error)
    return "replayed" if reply.replayed else "ok"


def test_money_limit_is_per_user_not_per_token(start_limited_wallet: StartWallet) -> None:
    limited = start_limited_wallet(MONEY_RATE_LIMIT_PER_USER="3")
    with stub_for(limited) as stub:
        name, other = unique_name(), unique_name()
        for who in (name, other):
            stub.Register(wallet_pb2.RegisterRequest(username=who, password=PASSWORD))
        tokens = [bearer(login(stub, name)) for _ in range(4)]  # minting tokens gains nothing
        answers = [_deposit_answer(stub, tokens[i], f"k{i}") for i in range(4)]
        # A retry of an accepted request answers its original result before any limit.
        replay = _deposit_answer(stub, tokens[3], "k0")
        others = _deposit_answer(stub, bearer(login(stub, other)), "k0")
        with pytest.raises(grpc.RpcError) as refused:
            stub.Withdraw(
                wallet_pb2.WithdrawRequest(amount="1.00", currency="USD", idempotency_key="w"),
                metadata=tokens[0],
            )
    assert answers == ["ok", "ok", "ok", "rate_limited"]
    assert replay == "replayed"
    assert others == "ok"
    assert error_reason(refused.value) == "rate_limited"
    delay = retry_delay_seconds(refused.value)
    assert delay is not None and 1 <= delay <= 60


def test_rest_money_limit_is_429_with_retry_after(
    start_limited_wallet: StartWallet, start_gateway: StartGateway
) -> None:
    limited = start_limited_wallet(MONEY_RATE_LIMIT_PER_USER="2")
    url = start_gateway(limited.addr)
    with stub_for(limited) as stub, httpx.Client(base_url=url, timeout=30) as client:
        name = unique_name()
        stub.Register(wallet_pb2.RegisterRequest(username=name, password=PASSWORD))
        statuses = []
        for i in range(3):
            token = login(stub, name)  # a fresh token each time
            response = client.post(
                "/deposit",
                json={"amount": "1.00", "currency": "USD"},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"rest-{i}"},
            )
            statuses.append(response.status_code)
    assert statuses == [201, 201, 429]
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
