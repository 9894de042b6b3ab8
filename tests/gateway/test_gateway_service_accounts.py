"""Service accounts and the OAuth 2.0 client-credentials grant through the gateway, on
both stores: an admin creates, rotates and disables; POST /oauth/token takes a form or
JSON and answers a bearer token the wallet accepts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Account, assert_error, unique_name


def create(api: httpx.Client, admin: Account, scopes: list[str]) -> dict[str, Any]:
    response = api.post(
        "/admin/service-accounts",
        json={"name": unique_name("svc"), "scopes": scopes},
        headers=admin.auth_header,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def grant(api: httpx.Client, client_id: str, secret: str, *, form: bool = True) -> httpx.Response:
    fields = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return api.post("/oauth/token", data=fields) if form else api.post("/oauth/token", json=fields)


def test_admin_creates_and_lists_a_service_account(api: httpx.Client, admin: Account) -> None:
    created = create(api, admin, ["deposits:write", "balances:read"])
    account = created["account"]
    assert created["msg"] == "Service account created"
    assert created["client_secret"].startswith("wsk_")
    assert account["scopes"] == ["balances:read", "deposits:write"]
    assert account["disabled"] is False
    listed = api.get("/admin/service-accounts", headers=admin.auth_header)
    assert listed.status_code == 200
    assert account in listed.json()["accounts"]
    assert created["client_secret"] not in listed.text


@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
def test_client_credentials_grant(api: httpx.Client, admin: Account, form: bool) -> None:
    created = create(api, admin, ["balances:read"])
    response = grant(api, created["account"]["id"], created["client_secret"], form=form)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["token_type"], body["scope"]) == ("Bearer", "balances:read")
    assert body["expires_in"] > 0
    assert response.headers["cache-control"] == "no-store"
    # The token is a service's: the user routes refuse it as such, not as a bad token.
    balance = api.get("/balance", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert_error(balance, 403, "user_token_required")


def test_bad_grants_are_refused(api: httpx.Client, admin: Account) -> None:
    created = create(api, admin, ["balances:read"])
    client_id = created["account"]["id"]
    assert_error(grant(api, client_id, "wrong"), 401, "invalid_client")
    other = {"grant_type": "password", "client_id": client_id, "client_secret": "x"}
    assert_error(api.post("/oauth/token", data=other), 400, "unsupported_grant_type")
    assert_error(api.post("/oauth/token", data={"grant_type": "client_credentials"}), 400,
                 "invalid_request")  # fmt: skip
    twice = "grant_type=client_credentials&client_id=a&client_id=b&client_secret=x"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_error(api.post("/oauth/token", content=twice, headers=headers), 400, "invalid_request")
    assert_error(api.post("/oauth/token", content=b"[1]"), 400, "invalid_request")


def test_rotate_then_disable(api: httpx.Client, admin: Account) -> None:
    created = create(api, admin, ["balances:read"])
    client_id, old = created["account"]["id"], created["client_secret"]
    rotated = api.post(
        f"/admin/service-accounts/{client_id}/rotate",
        json={"grace_seconds": 0},
        headers=admin.auth_header,
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["client_secret"]
    assert_error(grant(api, client_id, old), 401, "invalid_client")
    token = grant(api, client_id, new).json()["access_token"]
    disabled = api.post(f"/admin/service-accounts/{client_id}/disable", headers=admin.auth_header)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    balance = api.get("/balance", headers={"Authorization": f"Bearer {token}"})
    assert_error(balance, 401, "token_revoked")
    assert_error(grant(api, client_id, new), 401, "invalid_client")
