"""End to end over real HTTP: gateway -> real wallet (SQLite and PostgreSQL) -> real fraud service.

Response bodies are compared whole; only values the servers mint (ids, tokens,
timestamps) are read from the response and then checked in place.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from gateway.settings import RateLimit
from tests.support import TEST_JWT_SECRET, Account, StartGateway, assert_error, unique_name

PASSWORD = "correct horse battery"


def register(api: httpx.Client, username: str) -> dict[str, Any]:
    response = api.post("/register", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def login(api: httpx.Client, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = api.post("/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def new_user(api: httpx.Client, prefix: str = "user") -> tuple[str, dict[str, str]]:
    username = unique_name(prefix)
    register(api, username)
    return username, login(api, username)


def deposit(api: httpx.Client, auth: dict[str, str], amount: Any, **headers: str) -> httpx.Response:
    return api.post(
        "/deposit", json={"amount": amount, "currency": "USD"}, headers={**auth, **headers}
    )


def test_the_whole_journey(api: httpx.Client, admin: Account) -> None:
    alice, bob = unique_name("alice"), unique_name("bob")

    registered = register(api, alice)
    assert registered == {
        "msg": "User registered",
        "user": {
            "id": registered["user"]["id"],
            "username": alice,
            "created_at": registered["user"]["created_at"],
        },
    }
    assert registered["user"]["id"] and registered["user"]["created_at"].endswith("Z")
    register(api, bob)

    logged_in = api.post("/login", json={"username": alice, "password": PASSWORD}).json()
    assert logged_in == {
        "access_token": logged_in["access_token"],
        "token_type": "Bearer",
        "expires_in": logged_in["expires_in"],
    }
    assert logged_in["expires_in"] > 0
    alice_auth = {"Authorization": f"Bearer {logged_in['access_token']}"}

    # 100.10 as a JSON number: parsed exactly, never through float.
    deposited = deposit(api, alice_auth, 100.10)
    assert deposited.status_code == 201
    deposit_id = deposited.json()["transaction_id"]
    assert deposited.json() == {
        "msg": "Deposit successful",
        "transaction_id": deposit_id,
        "flagged": False,
        "balance": "100.10",
        "replayed": False,
    }

    expected_balance = {"username": alice, "currency": "USD", "balance": "100.10"}
    assert api.get("/balance", params={"currency": "USD"}, headers=alice_auth).json() == (
        expected_balance
    )
    assert api.get("/balance", headers=alice_auth).json() == expected_balance  # USD by default

    transfer = {"to_username": bob, "amount": "40.05", "currency": "USD"}
    transferred = api.post("/transfer", json=transfer, headers=alice_auth)
    assert transferred.status_code == 201
    transfer_id = transferred.json()["transaction_id"]
    assert transferred.json() == {
        "msg": "Transfer successful",
        "transaction_id": transfer_id,
        "flagged": False,
        "balance": "60.05",
        "replayed": False,
    }

    bob_auth = login(api, bob)
    assert api.get("/balances", headers=bob_auth).json() == {
        "username": bob,
        "balances": [{"currency": "USD", "balance": "40.05"}],
    }

    listed = api.get("/transactions", headers=alice_auth).json()
    transfer_item = {
        "tx_id": transfer_id,
        "from_user": alice,
        "to_user": bob,
        "amount": "40.05",
        "currency": "USD",
        "tx_type": "transfer",
        "status": "completed",
        "timestamp": listed["transactions"][0]["timestamp"],
        "flagged": False,
        "deleted": False,
    }
    deposit_item = {
        **transfer_item,
        "tx_id": deposit_id,
        "from_user": None,
        "to_user": alice,
        "amount": "100.10",
        "tx_type": "deposit",
        "timestamp": listed["transactions"][1]["timestamp"],
    }
    assert listed == {"transactions": [transfer_item, deposit_item], "next_cursor": None}
    assert api.get(f"/transactions/{transfer_id}", headers=alice_auth).json() == transfer_item
    assert api.get(f"/transactions/{transfer_id}", headers=bob_auth).json() == transfer_item

    # A large deposit is flagged for review and shows up for admins.
    big = deposit(api, alice_auth, "10000")
    assert big.status_code == 201
    big_id = big.json()["transaction_id"]
    assert big.json() == {
        "msg": "Deposit successful",
        "transaction_id": big_id,
        "flagged": True,
        "balance": "10060.05",
        "replayed": False,
    }
    flagged = api.get("/admin/flagged", headers=admin.auth_header).json()
    item = next(tx for tx in flagged["transactions"] if tx["tx_id"] == big_id)
    assert item == {
        "tx_id": big_id,
        "from_user": None,
        "to_user": alice,
        "amount": "10000.00",
        "currency": "USD",
        "tx_type": "deposit",
        "status": "completed",
        "timestamp": item["timestamp"],
        "flagged": True,
        "deleted": False,
        "fraud_score": item["fraud_score"],
        "fraud_decision": "REVIEW",
        "fraud_reasons": item["fraud_reasons"],
        "fraud_rules_version": "1",  # the seeded version of the session fraud store
        "review_status": "pending",
        "reviewed_by": None,
        "reviewed_at": None,
        "review_note": None,
    }
    assert 0 < item["fraud_score"] <= 100
    assert item["fraud_reasons"]
    assert all(set(reason) == {"rule_id", "description"} for reason in item["fraud_reasons"])

    reviewed = api.post(
        f"/admin/transactions/{big_id}/review",
        json={"resolution": "cleared", "note": "known customer"},
        headers=admin.auth_header,
    )
    assert reviewed.status_code == 200
    assert reviewed.json()["msg"] == "Review recorded"
    assert reviewed.json()["transaction"]["review_status"] == "cleared"
    assert reviewed.json()["transaction"]["review_note"] == "known customer"
    assert reviewed.json()["transaction"]["reviewed_at"]


def test_tokens_no_bad_and_expired_are_401(api: httpx.Client) -> None:
    _, auth = new_user(api)
    assert_error(api.get("/balance"), 401, "token_missing", "Missing bearer token")
    bad = api.get("/balance", headers={"Authorization": "Bearer not.a.jwt"})
    assert_error(bad, 401, "token_invalid")
    assert bad.headers["www-authenticate"] == "Bearer"

    # The same claims, re-signed with the wallet's test key but expired an hour ago.
    claims = jwt.decode(auth["Authorization"].split()[1], options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    expired = jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
    response = api.get("/balance", headers={"Authorization": f"Bearer {expired}"})
    assert_error(response, 401, "token_expired")

    forged = jwt.encode(claims | {"exp": now + 3600}, "not-the-key-" * 4, algorithm="HS256")
    response = api.get("/balance", headers={"Authorization": f"Bearer {forged}"})
    assert_error(response, 401, "token_invalid")


ADMIN_CALLS = [
    ("GET", "/admin/flagged", None),
    ("POST", "/admin/transactions/{tx}/review", {"resolution": "cleared", "note": "x"}),
    ("POST", "/admin/transactions/{tx}/reverse", {"reason": "x"}),
    ("DELETE", "/admin/transactions/{tx}", None),
    ("DELETE", "/admin/users/{user}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_a_normal_user_on_admin_routes_is_403(
    api: httpx.Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    username, auth = new_user(api)
    tx = deposit(api, auth, "5").json()["transaction_id"]
    url = path.format(tx=tx, user=username)
    response = api.request(method, url, json=body, headers=auth)
    assert_error(response, 403, response.json()["error"]["code"])
    assert response.json()["error"]["code"] in {"permission_denied", "admin_required"}


def test_a_user_cannot_see_another_users_transaction(api: httpx.Client) -> None:
    _, alice = new_user(api, "alice")
    _, mallory = new_user(api, "mallory")
    tx = deposit(api, alice, "12.00").json()["transaction_id"]
    assert_error(api.get(f"/transactions/{tx}", headers=mallory), 404, "transaction_not_found")
    assert api.get(f"/transactions/{tx}", headers=alice).status_code == 200


def test_an_idempotent_retry_moves_money_once(api: httpx.Client) -> None:
    _, auth = new_user(api)
    first = deposit(api, auth, "25.50", **{"Idempotency-Key": "dep-1"})
    retry = deposit(api, auth, "25.50", **{"Idempotency-Key": "dep-1"})
    assert first.status_code == retry.status_code == 201
    assert retry.json() == {**first.json(), "replayed": True}
    assert api.get("/balance", headers=auth).json()["balance"] == "25.50"
    listed = api.get("/transactions", headers=auth).json()["transactions"]
    assert [tx["tx_id"] for tx in listed] == [first.json()["transaction_id"]]

    reused = deposit(api, auth, "99", **{"Idempotency-Key": "dep-1"})
    assert_error(reused, 409, "idempotency_key_reused")
    assert api.get("/balance", headers=auth).json()["balance"] == "25.50"


@pytest.mark.parametrize(
    ("amount", "currency", "status", "code"),
    [
        ("abc", "USD", 400, "invalid_amount"),
        ("0", "USD", 400, "invalid_amount"),
        ("-5", "USD", 400, "invalid_amount"),
        ("1.001", "USD", 400, "invalid_amount"),
        ("10", "XXX", 400, "unsupported_currency"),
    ],
)
def test_the_wallet_judges_amounts_and_currencies(
    api: httpx.Client, amount: str, currency: str, status: int, code: str
) -> None:
    _, auth = new_user(api)
    response = api.post("/deposit", json={"amount": amount, "currency": currency}, headers=auth)
    assert_error(response, status, code)


def test_business_errors_map_to_their_statuses(api: httpx.Client) -> None:
    username, auth = new_user(api)
    assert_error(
        api.post("/withdraw", json={"amount": "1.00"}, headers=auth), 422, "insufficient_funds"
    )
    ghost = {"to_username": unique_name("ghost"), "amount": "1.00"}
    response = api.post("/transfer", json=ghost, headers=auth)
    assert response.status_code == 404
    assert response.json()["error"]["code"] in {"recipient_not_found", "user_not_found"}
    duplicate = api.post("/register", json={"username": username, "password": PASSWORD})
    assert_error(duplicate, 409, "username_taken")
    wrong = api.post("/login", json={"username": username, "password": "wrong password"})
    assert_error(wrong, 401, "invalid_credentials")


def test_a_user_deletes_their_empty_account(api: httpx.Client) -> None:
    username, auth = new_user(api)
    deleted = api.delete("/me", headers=auth)
    assert deleted.status_code == 200
    body = deleted.json()
    assert body == {
        "msg": "Account deleted",
        "user": {
            "id": body["user"]["id"],
            "username": username,
            "created_at": body["user"]["created_at"],
        },
    }
    response = api.post("/login", json={"username": username, "password": PASSWORD})
    assert_error(response, 401, "invalid_credentials")


def test_admin_reverses_deletes_and_removes(api: httpx.Client, admin: Account) -> None:
    username, auth = new_user(api)
    tx = deposit(api, auth, "30.00").json()["transaction_id"]

    reversed_ = api.post(
        f"/admin/transactions/{tx}/reverse",
        json={"reason": "card chargeback"},
        headers={**admin.auth_header, "Idempotency-Key": unique_name("rev")},  # the admin is shared
    )
    assert reversed_.status_code == 201, reversed_.text
    assert reversed_.json() == {
        "msg": "Transaction reversed",
        "transaction_id": reversed_.json()["transaction_id"],
        "flagged": False,
        "balance": "0.00",
        "replayed": False,
    }
    assert api.get("/balance", headers=auth).json()["balance"] == "0.00"

    deleted = api.delete(f"/admin/transactions/{tx}", headers=admin.auth_header)
    assert deleted.status_code == 200
    assert deleted.json()["msg"] == "Transaction deleted"
    assert deleted.json()["transaction"]["deleted"] is True
    assert_error(api.get(f"/transactions/{tx}", headers=auth), 404, "transaction_not_found")

    removed = api.delete(f"/admin/users/{username}", headers=admin.auth_header)
    assert removed.status_code == 200
    assert removed.json()["msg"] == "User deleted"
    assert removed.json()["user"]["username"] == username


def test_login_rate_limit_with_the_real_wallet(
    start_gateway: StartGateway, wallet_addr: str
) -> None:
    url = start_gateway(wallet_addr, login_per_username=RateLimit(limit=3, window_seconds=3600))
    with httpx.Client(base_url=url, timeout=15) as client:
        victim, other = unique_name("victim"), unique_name("other")
        register(client, victim)
        register(client, other)
        wrong = {"username": victim, "password": "guess"}
        codes = [client.post("/login", json=wrong).status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        refused = client.post("/login", json={"username": victim, "password": PASSWORD})
        assert_error(refused, 429, "rate_limited", "Too many login attempts, try again later")
        assert int(refused.headers["retry-after"]) > 0
        assert (
            client.post("/login", json={"username": other, "password": PASSWORD}).status_code == 200
        )


def test_readyz_with_the_real_wallet(api: httpx.Client) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.parametrize("path", ["/login", "/register"])
def test_text_with_nul_is_a_client_error(api: httpx.Client, path: str) -> None:
    # Found by the schemathesis run (a 500 on PostgreSQL, which cannot store NUL in text).
    response = api.post(path, json={"username": "nul\u0000name", "password": PASSWORD})
    assert 400 <= response.status_code < 500, response.text
