"""API5:2023 Broken Function Level Authorization: every admin RPC and every admin REST
route is refused to a normal user (and to anonymous callers), and changes nothing.

The lists below are checked against the proto and the gateway's routes, so a new admin
function fails this suite until it is classified here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.support import Account, MakeUser, Unchanged, deposit, error_reason

USER_METHODS = {
    "Register",
    "Login",
    "GetBalance",
    "ListBalances",
    "Deposit",
    "Withdraw",
    "Transfer",
    "ListTransactions",
    "GetTransaction",
    "DeleteAccount",
}
ADMIN_METHODS = {
    "ListFlaggedTransactions",
    "ReviewTransaction",
    "ReverseTransaction",
    "DeleteTransaction",
    "DeleteUser",
}


def test_every_rpc_is_classified() -> None:
    methods = {m.name for m in wallet_pb2.DESCRIPTOR.services_by_name["WalletService"].methods}
    assert methods == USER_METHODS | ADMIN_METHODS


@pytest.fixture
def targets(stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser) -> dict[str, str]:
    """Real objects, so a refusal is about the caller and not a missing id."""
    victim = make_user()
    flagged = deposit(stub, victim, "20000.00").transaction
    assert flagged.flagged
    return {"tx": flagged.id, "victim": victim.username}


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
        "ListTransactions(username)": lambda md: stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(username=victim), metadata=md
        ),
        "ListTransactions(include_deleted)": lambda md: stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(include_deleted=True), metadata=md
        ),
        "ListFlaggedTransactions(include_deleted)": lambda md: stub.ListFlaggedTransactions(
            wallet_pb2.ListFlaggedTransactionsRequest(include_deleted=True), metadata=md
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
    return path.replace("{transaction_id}", targets["tx"]).replace("{username}", targets["victim"])


BODIES = {"review": {"resolution": "cleared", "note": "x"}, "reverse": {"reason": "x"}}


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
