"""API5:2023 Broken Function Level Authorization: every admin RPC and every admin REST
route is refused to a normal user (and to anonymous callers), and changes nothing.

The lists below are checked against the proto and the gateway's routes, so a new admin
function fails this suite until it is classified here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.support import (
    PASSWORD,
    STORES,
    TEST_JWT_SECRET,
    Account,
    CreateDatabase,
    MakeUser,
    RunningWallet,
    SpawnService,
    Unchanged,
    bearer,
    create_service_account,
    database_url,
    db_snapshot,
    deposit,
    error_reason,
    login,
    register,
    running_gateway,
    start_wallet,
    unique_name,
    wallet_settings,
)
from tests.support.notify import store_dead_events
from wallet_service.database import create_db_engine, migrate
from wallet_service.ids import uuid7
from wallet_service.models import Role, utc_now
from wallet_service.store import SqlStore

USER_METHODS = {
    "Register",
    "Login",
    "GetBalance",
    "ListBalances",
    "Deposit",
    "Withdraw",
    "Transfer",
    "CreateTransfers",
    "ListTransactions",
    "GetTransaction",
    "DeleteAccount",
    "ChangePassword",
    "LogoutAll",
    "SetEmail",
    # Public: the client id and secret are the credentials (tests/wallet/test_service_accounts.py).
    "IssueServiceToken",
}
ADMIN_METHODS = {
    "ListFlaggedTransactions",
    "ReviewTransaction",
    "ReverseTransaction",
    "DeleteTransaction",
    "DeleteUser",
    "FreezeUser",
    "UnfreezeUser",
    "BacktestRuleSet",
    "ListOutboxEvents",
    "OutboxCounts",
    "RetryDeadEvent",
    "CreateServiceAccount",
    "ListServiceAccounts",
    "RotateServiceAccountSecret",
    "DisableServiceAccount",
}


# Service tokens only, each with its scope (tests/security/test_api5_service_scopes.py).
SERVICE_METHODS = {
    "DepositFor",
    "WithdrawFor",
    "TransferFor",
    "GetBalanceFor",
    "ListTransactionsFor",
}


def test_every_rpc_is_classified() -> None:
    methods = {m.name for m in wallet_pb2.DESCRIPTOR.services_by_name["WalletService"].methods}
    assert methods == USER_METHODS | ADMIN_METHODS | SERVICE_METHODS


@pytest.fixture
def targets(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    wallet: RunningWallet,
    admin: Account,
) -> dict[str, str]:
    """Real objects, so a refusal is about the caller and not a missing id."""
    victim = make_user()
    flagged = deposit(stub, victim, "20000.00").transaction
    assert flagged.flagged
    [dead] = store_dead_events(wallet.store, 1)
    service = create_service_account(stub, admin.metadata, ["balances:read"])
    return {
        "tx": flagged.id,
        "victim": victim.username,
        "event": dead.id,
        "service": service.client_id,
    }


def _admin_calls(
    stub: wallet_pb2_grpc.WalletServiceStub, targets: dict[str, str]
) -> dict[str, Callable[[Any], Any]]:
    tx, victim = targets["tx"], targets["victim"]
    return {
        "ListFlaggedTransactions": lambda md: stub.ListFlaggedTransactions(
            wallet_pb2.ListFlaggedTransactionsRequest(), metadata=md
        ),
        "ReviewTransaction": lambda md: stub.ReviewTransaction(
            wallet_pb2.ReviewTransactionRequest(transaction_id=tx, resolution="cleared"),
            metadata=md,
        ),
        "ReverseTransaction": lambda md: stub.ReverseTransaction(
            wallet_pb2.ReverseTransactionRequest(transaction_id=tx, idempotency_key="fl-rev"),
            metadata=md,
        ),
        "DeleteTransaction": lambda md: stub.DeleteTransaction(
            wallet_pb2.DeleteTransactionRequest(transaction_id=tx), metadata=md
        ),
        "DeleteUser": lambda md: stub.DeleteUser(
            wallet_pb2.DeleteUserRequest(username=victim), metadata=md
        ),
        "FreezeUser": lambda md: stub.FreezeUser(
            wallet_pb2.FreezeUserRequest(username=victim, reason="x"), metadata=md
        ),
        "UnfreezeUser": lambda md: stub.UnfreezeUser(
            wallet_pb2.UnfreezeUserRequest(username=victim), metadata=md
        ),
        "BacktestRuleSet": lambda md: stub.BacktestRuleSet(
            wallet_pb2.BacktestRuleSetRequest(
                version=1, since="2020-01-01T00:00:00Z", until="2020-01-02T00:00:00Z"
            ),
            metadata=md,
        ),
        "CreateServiceAccount": lambda md: stub.CreateServiceAccount(
            wallet_pb2.CreateServiceAccountRequest(name="fl-svc", scopes=["deposits:write"]),
            metadata=md,
        ),
        "ListServiceAccounts": lambda md: stub.ListServiceAccounts(
            wallet_pb2.ListServiceAccountsRequest(), metadata=md
        ),
        "RotateServiceAccountSecret": lambda md: stub.RotateServiceAccountSecret(
            wallet_pb2.RotateServiceAccountSecretRequest(id=targets["service"]), metadata=md
        ),
        "DisableServiceAccount": lambda md: stub.DisableServiceAccount(
            wallet_pb2.DisableServiceAccountRequest(id=targets["service"]), metadata=md
        ),
        "ReviewTransaction(freeze)": lambda md: stub.ReviewTransaction(
            wallet_pb2.ReviewTransactionRequest(
                transaction_id=tx, resolution="confirmed_fraud", freeze=True
            ),
            metadata=md,
        ),
        "ListTransactions(username)": lambda md: stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(username=victim), metadata=md
        ),
        "ListTransactions(include_deleted)": lambda md: stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(include_deleted=True), metadata=md
        ),
        "ListFlaggedTransactions(include_deleted)": lambda md: stub.ListFlaggedTransactions(
            wallet_pb2.ListFlaggedTransactionsRequest(include_deleted=True), metadata=md
        ),
        "ListOutboxEvents": lambda md: stub.ListOutboxEvents(
            wallet_pb2.ListOutboxEventsRequest(status="dead"), metadata=md
        ),
        "OutboxCounts": lambda md: stub.OutboxCounts(wallet_pb2.OutboxCountsRequest(), metadata=md),
        "RetryDeadEvent": lambda md: stub.RetryDeadEvent(
            wallet_pb2.RetryDeadEventRequest(event_id=targets["event"]), metadata=md
        ),
    }


def test_every_admin_rpc_is_refused_to_users(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    targets: dict[str, str],
    unchanged: Unchanged,
) -> None:
    user = make_user()
    calls = _admin_calls(stub, targets)
    assert {name.partition("(")[0] for name in calls} >= ADMIN_METHODS
    for name, call in calls.items():
        with unchanged(), pytest.raises(grpc.RpcError) as info:
            call(user.metadata)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
        assert error_reason(info.value) == "admin_required", name


def test_every_admin_rpc_is_refused_to_anonymous_callers(
    stub: wallet_pb2_grpc.WalletServiceStub, targets: dict[str, str], unchanged: Unchanged
) -> None:
    for name, call in _admin_calls(stub, targets).items():
        with unchanged(), pytest.raises(grpc.RpcError) as info:
            call(())
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name


def test_admin_rpcs_work_for_admins(
    stub: wallet_pb2_grpc.WalletServiceStub, admin: Account, targets: dict[str, str]
) -> None:
    """Control: the same calls succeed for an admin, so the refusals above are about role."""
    queue = stub.ListFlaggedTransactions(
        wallet_pb2.ListFlaggedTransactionsRequest(limit=200, review_status="pending"),
        metadata=admin.metadata,
    )
    assert queue.transactions
    reviewed = stub.ReviewTransaction(
        wallet_pb2.ReviewTransactionRequest(transaction_id=targets["tx"], resolution="cleared"),
        metadata=admin.metadata,
    )
    assert reviewed.review_status == "cleared"
    retried = stub.RetryDeadEvent(
        wallet_pb2.RetryDeadEventRequest(event_id=targets["event"]), metadata=admin.metadata
    )
    assert retried.status == "pending"


def _admin_routes() -> list[tuple[str, str]]:
    """Every /admin operation the gateway documents in its OpenAPI schema."""
    paths = create_app(GatewaySettings()).openapi()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/admin")
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    )


ADMIN_ROUTES = _admin_routes()


def test_admin_routes_exist() -> None:
    assert ("GET", "/admin/flagged") in ADMIN_ROUTES
    assert len(ADMIN_ROUTES) >= 5, ADMIN_ROUTES


def _fill(path: str, targets: dict[str, str]) -> str:
    return (
        path.replace("{transaction_id}", targets["tx"])
        .replace("{username}", targets["victim"])
        .replace("{version}", "1")
        .replace("{list_name}", "block")
        .replace("{event_id}", targets["event"])
        .replace("{account_id}", targets["service"])
    )


# Valid bodies, so that what refuses the call is the role, not the shape of the body.
BODIES: dict[str, dict[str, object]] = {
    "review": {"resolution": "cleared", "note": "x"},
    "reverse": {"reason": "x"},
    "freeze": {"reason": "x"},
    "/admin/fraud/rulesets": {"rules": [{"kind": "large_amount", "params": {"threshold": 1}}]},
    "/admin/fraud/lists/{list_name}": {"username": "someone"},
    "/admin/fraud/backtest": {
        "version": 1,
        "since": "2020-01-01T00:00:00Z",
        "until": "2020-01-02T00:00:00Z",
    },
    "/admin/service-accounts": {"name": "fl-route", "scopes": ["deposits:write"]},
    "/rotate": {"grace_seconds": 0},
}


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_every_admin_route_is_refused_to_users(
    method: str,
    path: str,
    make_user: MakeUser,
    targets: dict[str, str],
    rest: httpx.Client,
    unchanged: Unchanged,
) -> None:
    user = make_user()
    body = next((b for k, b in BODIES.items() if path.endswith(k)), None)
    url = _fill(path, targets)
    with unchanged():
        response = rest.request(
            method,
            url,
            json=body,
            headers={**user.auth_header, "Idempotency-Key": "fl-route"},
        )
        anonymous = rest.request(method, url, json=body)
    assert response.status_code == 403, (method, url, response.text)
    assert response.json()["error"]["code"] == "admin_required"
    assert anonymous.status_code == 401, (method, url, anonymous.text)


def test_user_history_of_others_through_rest_is_refused(
    make_user: MakeUser, targets: dict[str, str], rest: httpx.Client, unchanged: Unchanged
) -> None:
    user = make_user()
    with unchanged():
        response = rest.get(
            "/transactions",
            params={"username": targets["victim"], "include_deleted": "true"},
            headers=user.auth_header,
        )
    assert response.status_code == 403


# -- the admin bootstrap (ADMIN_USERNAME / ADMIN_PASSWORD) ------------------------------------


@pytest.fixture(params=STORES)
def fresh_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database_factory: CreateDatabase
) -> str:
    """An empty database of each kind, for a wallet started just for one test."""
    return database_url(request.param, tmp_path, pg_database_factory)


def _store(url: str) -> SqlStore:
    engine = create_db_engine(url, pool_size=2)
    migrate(engine)
    return SqlStore(engine)


def test_bootstrap_refuses_to_promote_an_existing_ordinary_account(
    fresh_url: str, spawn: SpawnService
) -> None:
    """The real process, ADMIN_USERNAME naming (in another case) someone's plain account:
    it must not start, must say why in one line naming the variable, and change nothing."""
    store = _store(fresh_url)
    name = unique_name("Mallory")
    store.create_user(
        user_id=uuid7(), username=name, password_hash="x", role=Role.USER, now=utc_now()
    )
    before = db_snapshot(store)
    process = spawn(
        "wallet",
        "wallet_service",
        APP_ENV="test",
        WALLET_ADDR="127.0.0.1:0",
        WALLET_DATABASE_URL=fresh_url,
        JWT_SECRET_KEY=TEST_JWT_SECRET,
        FRAUD_ADDR="",
        ADMIN_USERNAME=name.lower(),
        ADMIN_PASSWORD="a strong admin password",
    )
    try:
        process.start()
        # hang guard: a wallet that starts anyway would serve until killed
        returncode = process.wait(timeout=60)
        after = db_snapshot(store)
    finally:
        store.engine.dispose()
    output = process.log_text()
    assert returncode == 2, output
    lines = [line for line in output.splitlines() if "ADMIN_USERNAME" in line]
    assert len(lines) == 1, output
    assert "refusing to promote" in lines[0]
    assert "Traceback" not in output
    assert after == before  # not promoted, not re-keyed


def test_bootstrap_rekeys_an_existing_admin_and_revokes_its_tokens(
    fresh_url: str, fraud_addr: str
) -> None:
    name = unique_name("boss")
    first = start_wallet(
        wallet_settings(fresh_url, fraud_addr, ADMIN_USERNAME=name, ADMIN_PASSWORD="first pass 1"),
        "x",
    )
    try:
        with grpc.insecure_channel(first.addr) as channel:
            old_token = login(wallet_pb2_grpc.WalletServiceStub(channel), name, "first pass 1")
    finally:
        first.server.stop(0)
    tokens = {}
    for password in ("first pass 1", "second pass 2"):  # a restart, then a new password
        running = start_wallet(
            wallet_settings(fresh_url, fraud_addr, ADMIN_USERNAME=name, ADMIN_PASSWORD=password),
            "x",
        )
        try:
            with grpc.insecure_channel(running.addr) as channel:
                stub = wallet_pb2_grpc.WalletServiceStub(channel)
                tokens[password] = _flagged_status(stub, old_token)
                new_token = login(stub, name, password)
                assert _flagged_status(stub, new_token) == grpc.StatusCode.OK
        finally:
            running.server.stop(0)
    assert tokens == {
        "first pass 1": grpc.StatusCode.OK,  # same password: a restart revokes nothing
        "second pass 2": grpc.StatusCode.UNAUTHENTICATED,
    }


def _flagged_status(stub: wallet_pb2_grpc.WalletServiceStub, token: str) -> grpc.StatusCode:
    try:
        stub.ListFlaggedTransactions(
            wallet_pb2.ListFlaggedTransactionsRequest(limit=1), metadata=bearer(token)
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture
def unbootstrapped(fresh_url: str, fraud_addr: str) -> Iterator[tuple[RunningWallet, str, str]]:
    """A wallet with ADMIN_USERNAME set but no ADMIN_PASSWORD: the admin does not exist yet.
    Yields the wallet, a gateway URL in front of it and the reserved name."""
    name = unique_name("Chief")
    running = start_wallet(
        wallet_settings(fresh_url, fraud_addr, ADMIN_USERNAME=name, ADMIN_PASSWORD=""), "x"
    )
    with running_gateway(running.addr) as url:
        yield running, url, name
    running.server.stop(0)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def test_the_admin_name_is_reserved_before_the_bootstrap_runs(
    unbootstrapped: tuple[RunningWallet, str, str],
) -> None:
    running, url, name = unbootstrapped
    before = db_snapshot(running.store)
    with grpc.insecure_channel(running.addr) as channel:
        stub = wallet_pb2_grpc.WalletServiceStub(channel)
        for variant in (name, name.lower(), _fullwidth(name.upper())):
            with pytest.raises(grpc.RpcError) as info:
                register(stub, variant)
            assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS, variant
            assert error_reason(info.value) == "username_taken", variant
        with httpx.Client(base_url=url, timeout=20) as rest:
            response = rest.post("/register", json={"username": name.upper(), "password": PASSWORD})
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "username_taken"
        assert db_snapshot(running.store) == before
        register(stub)  # control: other names register fine
