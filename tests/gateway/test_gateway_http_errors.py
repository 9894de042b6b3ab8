"""Gateway behaviour that needs no wallet: probes, request ids, body checks, auth presence,
CORS, and a wallet that is down. Real HTTP against a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import StartGateway, assert_error

AUTH = {"Authorization": "Bearer not-checked-because-the-wallet-is-down"}
JSON = {"Content-Type": "application/json"}

PROTECTED = [
    ("GET", "/balance"),
    ("GET", "/balances"),
    ("POST", "/deposit"),
    ("POST", "/withdraw"),
    ("POST", "/transfer"),
    ("GET", "/transactions"),
    ("GET", "/transactions/abc"),
    ("DELETE", "/me"),
    ("POST", "/me/password"),
    ("POST", "/logout"),
    ("GET", "/admin/flagged"),
    ("POST", "/admin/transactions/abc/review"),
    ("POST", "/admin/transactions/abc/reverse"),
    ("DELETE", "/admin/transactions/abc"),
    ("DELETE", "/admin/users/someone"),
]


def test_healthz_is_up_even_when_the_wallet_is_down(down_client: httpx.Client) -> None:
    response = down_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response.headers["x-request-id"]) == 32


def test_readyz_is_503_when_the_wallet_is_down(down_client: httpx.Client) -> None:
    response = down_client.get("/readyz")
    assert_error(response, 503, "not_ready", "Wallet service is not reachable or not serving")


def test_request_id_is_echoed_when_sane_and_replaced_when_not(down_client: httpx.Client) -> None:
    kept = down_client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    assert kept.headers["x-request-id"] == "trace-42.a:b"
    replaced = down_client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"
    assert len(replaced.headers["x-request-id"]) == 32


def test_wallet_down_is_503_with_the_error_shape(down_client: httpx.Client) -> None:
    response = down_client.post("/login", json={"username": "alice", "password": "pw"})
    assert_error(response, 503, "unavailable", "Wallet service unavailable")
    response = down_client.post("/deposit", json={"amount": "1.00"}, headers=AUTH)
    assert_error(response, 503, "unavailable", "Wallet service unavailable")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401_before_any_wallet_call(
    down_client: httpx.Client, method: str, path: str
) -> None:
    response = down_client.request(method, path)
    assert_error(response, 401, "token_missing", "Missing bearer token")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_non_bearer_authorization_is_401(down_client: httpx.Client) -> None:
    response = down_client.get("/balance", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert_error(response, 401, "token_missing", "Missing bearer token")


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b'{"amount": "1.00"', "malformed_json", "Request body is not valid JSON"),
        (b"not json at all", "malformed_json", "Request body is not valid JSON"),
        (b'{"amount": NaN}', "malformed_json", "Request body is not valid JSON"),
        (b'{"amount": Infinity}', "malformed_json", "Request body is not valid JSON"),
        (b"\xff\xfe\x00", "malformed_json", "Request body is not valid JSON"),
        (b"[" * 20_000 + b"]" * 20_000, "malformed_json", "Request body is not valid JSON"),
        (b"", "missing_body", "Request body is required (a JSON object)"),
        (
            b'["amount", 1]',
            "invalid_body",
            "Request body must be a JSON object sent as Content-Type: application/json",
        ),
        (
            b'{"amount": true}',
            "invalid_request",
            "amount: must be a decimal string or a JSON number",
        ),
        (
            b'{"amount": [1]}',
            "invalid_request",
            "amount: must be a decimal string or a JSON number",
        ),
        (b'{"amount": {}}', "invalid_request", "amount: must be a decimal string or a JSON number"),
        (
            b'{"amount": null}',
            "invalid_request",
            "amount: must be a decimal string or a JSON number",
        ),
        (b'{"currency": "USD"}', "invalid_request", "amount: Field required"),
        (b'{"amount": 1e999999999}', "invalid_request", "amount: must be at most 64 characters"),
        (b'{"amount": "\\ud800"}', "invalid_request", "amount: text must be valid Unicode"),
        (
            b'{"amount": "1", "currency": 7}',
            "invalid_request",
            "currency: Input should be a valid string",
        ),
        (b'{"amount": "1.00", "fee": "0"}', "unknown_field", "unknown field 'fee'"),
    ],
)
def test_bad_deposit_bodies_are_400(
    down_client: httpx.Client, body: bytes, code: str, message: str
) -> None:
    response = down_client.post("/deposit", content=body, headers={**AUTH, **JSON})
    assert_error(response, 400, code, message)


def test_unknown_fields_are_refused_on_every_money_body(down_client: httpx.Client) -> None:
    bodies = {
        "/withdraw": {"amount": "1", "currency": "USD", "extra": 1},
        "/transfer": {"to_username": "bob", "amount": "1", "extra": 1},
        "/admin/transactions/abc/reverse": {"reason": "dup", "extra": 1},
        "/admin/transactions/abc/review": {"resolution": "cleared", "extra": 1},
    }
    for path, body in bodies.items():
        response = down_client.post(path, json=body, headers=AUTH)
        assert_error(response, 400, "unknown_field", "unknown field 'extra'")


def test_a_body_that_is_not_declared_json_is_400(down_client: httpx.Client) -> None:
    # Refusing text/plain also keeps cross-site "simple" form posts out.
    response = down_client.post(
        "/deposit", content=b'{"amount": "1"}', headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert_error(response, 400, "invalid_body")


@pytest.fixture
def small_body_client(start_gateway: StartGateway, closed_addr: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=start_gateway(closed_addr, max_body_bytes=64), timeout=10) as c:
        yield c


def test_a_body_over_the_limit_is_413(small_body_client: httpx.Client) -> None:
    body = {"amount": "1", "currency": "USD", "padding": "x" * 100}
    response = small_body_client.post("/deposit", json=body, headers=AUTH)
    assert_error(response, 413, "payload_too_large", "Request body is larger than 64 bytes")


def test_a_streamed_body_over_the_limit_is_413(small_body_client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for _ in range(10):
            yield b"x" * 16

    response = small_body_client.post("/deposit", content=chunks(), headers={**AUTH, **JSON})
    assert_error(response, 413, "payload_too_large")


def test_unknown_path_and_wrong_method_use_the_error_shape(down_client: httpx.Client) -> None:
    assert_error(down_client.get("/nope"), 404, "not_found", "Not Found")
    response = down_client.delete("/healthz")
    assert_error(response, 405, "method_not_allowed", "Method Not Allowed")


def test_openapi_and_docs_are_served(down_client: httpx.Client) -> None:
    schema = down_client.get("/openapi.json").json()
    tx = "/admin/transactions/{transaction_id}"
    expected = {
        "/register", "/login", "/balance", "/balances", "/deposit", "/withdraw", "/transfer",
        "/transactions", "/transactions/{transaction_id}", "/me", "/me/password", "/logout",
        "/me/email",
        "/admin/flagged", "/transfers/batch",
        f"{tx}/review", f"{tx}/reverse", tx, "/admin/users/{username}",
        "/admin/users/{username}/freeze", "/admin/users/{username}/unfreeze", "/healthz", "/readyz",
        "/admin/fraud/rulesets", "/admin/fraud/rulesets/{version}",
        "/admin/fraud/rulesets/{version}/activate", "/admin/fraud/lists",
        "/admin/fraud/lists/{list_name}", "/admin/fraud/lists/{list_name}/{username}",
        "/admin/fraud/snoozes", "/admin/fraud/backtest",
        "/admin/notifications", "/admin/notifications/counts",
        "/admin/notifications/{event_id}/retry",
        "/admin/service-accounts", "/oauth/token",
        "/admin/service-accounts/{account_id}/rotate",
        "/admin/service-accounts/{account_id}/disable",
        "/metrics",
    }  # fmt: skip
    assert set(schema["paths"]) == expected
    deposit = schema["paths"]["/deposit"]["post"]
    assert {"201", "400", "401", "413", "429", "503"} <= set(deposit["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in deposit["parameters"])
    assert down_client.get("/docs").status_code == 200


def test_cors_allows_only_configured_origins(start_gateway: StartGateway, closed_addr: str) -> None:
    url = start_gateway(closed_addr, cors_origins=("https://app.example",))
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    with httpx.Client(base_url=url) as client:
        allowed = client.options("/deposit", headers={"Origin": "https://app.example", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        refused = client.options(
            "/deposit", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in refused.headers
        simple = client.get("/healthz", headers={"Origin": "https://app.example"})
        assert "X-Request-ID" in simple.headers["access-control-expose-headers"]
