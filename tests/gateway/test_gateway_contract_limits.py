"""The limits the gateway and the wallet share (common.limits) are the ones the OpenAPI
document advertises and the gateway enforces before any wallet call, over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from common.limits import (
    DEFAULT_PAGE_SIZE,
    IDEMPOTENCY_KEY_RULE,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_NOTE_LENGTH,
    MAX_PAGE_SIZE,
    MAX_USERNAME_INPUT_LENGTH,
)
from tests.support import assert_error, unique_name

IDEMPOTENT_ROUTES = [
    ("/deposit", "post"),
    ("/withdraw", "post"),
    ("/transfer", "post"),
    ("/admin/transactions/{transaction_id}/reverse", "post"),
]
PAGED_ROUTES = ["/transactions", "/admin/flagged"]
USERNAME_ROUTES = [
    ("/admin/users/{username}", "delete"),
    ("/admin/users/{username}/freeze", "post"),
    ("/admin/users/{username}/unfreeze", "post"),
]
# Any bearer token: the gateway does not verify it, and these requests never reach a wallet.
AUTH = {"Authorization": "Bearer not-checked-by-the-gateway"}
MOVEMENT = {"amount": "1.00", "currency": "USD"}


@pytest.fixture(scope="module")
def openapi(down_url: str) -> dict[str, Any]:
    schema: dict[str, Any] = httpx.get(f"{down_url}/openapi.json", timeout=10).json()
    return schema


def _parameter(openapi: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    parameters = openapi["paths"][path][method]["parameters"]
    [parameter] = [p for p in parameters if p["name"] == name]
    schema: dict[str, Any] = parameter["schema"]
    return schema


@pytest.mark.parametrize(("path", "method"), IDEMPOTENT_ROUTES)
def test_openapi_advertises_the_wallets_idempotency_key_length(
    openapi: dict[str, Any], path: str, method: str
) -> None:
    schema = _parameter(openapi, path, method, "Idempotency-Key")
    assert schema["maxLength"] == MAX_IDEMPOTENCY_KEY_LENGTH == 128


@pytest.mark.parametrize("path", PAGED_ROUTES)
def test_openapi_advertises_the_wallets_page_size(openapi: dict[str, Any], path: str) -> None:
    parameters = openapi["paths"][path]["get"]["parameters"]
    [limit] = [p for p in parameters if p["name"] == "limit"]
    [bounded] = [option for option in limit["schema"]["anyOf"] if option.get("type") == "integer"]
    assert (bounded["minimum"], bounded["maximum"]) == (1, MAX_PAGE_SIZE)
    assert limit["description"] == f"Page size (default {DEFAULT_PAGE_SIZE})"


@pytest.mark.parametrize(("path", "method"), USERNAME_ROUTES)
def test_openapi_advertises_the_wallets_username_length(
    openapi: dict[str, Any], path: str, method: str
) -> None:
    schema = _parameter(openapi, path, method, "username")
    assert (schema["minLength"], schema["maxLength"]) == (1, MAX_USERNAME_INPUT_LENGTH)


def test_openapi_advertises_the_wallets_note_length(openapi: dict[str, Any]) -> None:
    reason = openapi["components"]["schemas"]["FreezeIn"]["properties"]["reason"]
    assert reason["maxLength"] == MAX_NOTE_LENGTH


@pytest.mark.parametrize(("path", "method"), IDEMPOTENT_ROUTES)
def test_overlong_idempotency_key_is_refused_by_the_gateway(
    down_client: httpx.Client, path: str, method: str
) -> None:
    """The wallet behind `down_client` is down: a 400 (not a 503) means no wallet call."""
    url = path.format(transaction_id=uuid.uuid4())
    body = {**MOVEMENT, "to_username": "someone"} if path == "/transfer" else MOVEMENT
    if "reverse" in path:
        body = {}
    over = {**AUTH, "Idempotency-Key": "k" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1)}
    response = down_client.request(method, url, json=body, headers=over)
    assert_error(response, 400, "invalid_idempotency_key", IDEMPOTENCY_KEY_RULE)
    # The longest key the wallet accepts is passed on (and so meets the down wallet).
    longest = {**AUTH, "Idempotency-Key": "k" * MAX_IDEMPOTENCY_KEY_LENGTH}
    assert down_client.request(method, url, json=body, headers=longest).status_code == 503


def test_body_errors_come_before_the_idempotency_key(down_client: httpx.Client) -> None:
    """As when the wallet checked the key: a bad body is reported first."""
    over = {**AUTH, "Idempotency-Key": "k" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1)}
    response = down_client.post("/deposit", json={**MOVEMENT, "pad": 1}, headers=over)
    assert_error(response, 400, "unknown_field", "unknown field 'pad'")


@pytest.mark.parametrize("path", PAGED_ROUTES)
def test_page_size_over_the_wallets_maximum_is_refused_by_the_gateway(
    down_client: httpx.Client, path: str
) -> None:
    over = down_client.get(path, params={"limit": MAX_PAGE_SIZE + 1}, headers=AUTH)
    assert_error(over, 400, "invalid_request")
    largest = down_client.get(path, params={"limit": MAX_PAGE_SIZE}, headers=AUTH)
    assert largest.status_code == 503


def test_the_wallet_accepts_the_longest_advertised_key(api: httpx.Client) -> None:
    """Against the real wallet (both stores): the gateway's limit is not tighter than the
    wallet's, and a replay with that key answers the same transaction."""
    credentials = {"username": unique_name("limits"), "password": "correct horse battery"}
    assert api.post("/register", json=credentials).status_code == 201
    token = api.post("/login", json=credentials).json()["access_token"]
    headers = {
        "Authorization": f"Bearer {token}",
        "Idempotency-Key": uuid.uuid4().hex.ljust(MAX_IDEMPOTENCY_KEY_LENGTH, "k"),
    }
    first = api.post("/deposit", json=MOVEMENT, headers=headers)
    again = api.post("/deposit", json=MOVEMENT, headers=headers)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == {**first.json(), "replayed": True}
