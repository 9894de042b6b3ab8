"""API2:2023 Broken Authentication: forged, expired, incomplete and tampered tokens,
tokens of deleted or demoted users, brute-force login, and no username enumeration.
Each hostile request is refused and changes nothing in the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import grpc
import httpx
import jwt
import pytest
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.support import (
    PASSWORD,
    TEST_JWT_SECRET,
    Account,
    MakeUser,
    RunningWallet,
    StartGateway,
    Unchanged,
    bearer,
    deposit,
    error_reason,
    login,
    register,
    set_role,
    unique_name,
)

ISSUER = "wallet_service"


def _claims(user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "nbf": now, "exp": now + 600}
    claims["iss"] = ISSUER
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


# A syntactically valid RSA public key (the verifier never needs it: HS256 is pinned). A
# confused verifier that accepts "RS256" and verifies with the HMAC secret, or accepts an
# HS256 token keyed with the public key, is what these tokens probe.
PUBLIC_KEY_PEM = (
    b"-----BEGIN PUBLIC KEY-----\n"
    b"MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAL7cQ3Lk0dXr0c6Yq8bV8mI1B7m3cW8E\n"
    b"7S0y3v9hH5nV2m6t0b8v1p2cUo7pLr0VJm2xNn1yS3mZ5X4v8aCkQ0ECAwEAAQ==\n"
    b"-----END PUBLIC KEY-----\n"
)


def _signed_as(alg: str, claims: dict[str, Any], signature: bytes) -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(signature)}"


def _hostile_tokens(user_id: str) -> dict[str, str]:
    now = int(time.time())
    valid = jwt.encode(_claims(user_id), TEST_JWT_SECRET, algorithm="HS256")
    head, body, sig = valid.split(".")
    forged_body = _b64(json.dumps(_claims(user_id, role="admin")).encode())
    return {
        "alg_none": _unsigned(_claims(user_id)),
        "alg_None_case": _unsigned(_claims(user_id), alg="None"),
        "rs256_foreign_key": _signed_as("RS256", _claims(user_id), b"\x01" * 256),
        "rs256_hmac_signed": _hmac_with(TEST_JWT_SECRET.encode(), _claims(user_id), alg="RS256"),
        "hs256_keyed_with_public_key": _hmac_with(PUBLIC_KEY_PEM, _claims(user_id)),
        "hs512_right_secret": _hmac_with(TEST_JWT_SECRET.encode(), _claims(user_id), alg="HS512"),
        "wrong_secret": jwt.encode(_claims(user_id), "x" * 64, algorithm="HS256"),
        "expired": jwt.encode(
            _claims(user_id, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
            TEST_JWT_SECRET,
            algorithm="HS256",
        ),
        "not_yet_valid": jwt.encode(
            _claims(user_id, nbf=now + 3600, exp=now + 7200),
            TEST_JWT_SECRET,
            algorithm="HS256",
        ),
        "missing_exp": jwt.encode(_claims(user_id, exp=None), TEST_JWT_SECRET, algorithm="HS256"),
        "missing_iat": jwt.encode(_claims(user_id, iat=None), TEST_JWT_SECRET, algorithm="HS256"),
        "missing_sub": jwt.encode(_claims(user_id, sub=None), TEST_JWT_SECRET, algorithm="HS256"),
        "missing_iss": jwt.encode(_claims(user_id, iss=None), TEST_JWT_SECRET, algorithm="HS256"),
        "foreign_issuer": jwt.encode(
            _claims(user_id, iss="someone-else"), TEST_JWT_SECRET, algorithm="HS256"
        ),
        "unknown_subject": jwt.encode(
            _claims("00000000-0000-7000-8000-000000000000"), TEST_JWT_SECRET, algorithm="HS256"
        ),
        "non_string_subject": jwt.encode(
            _claims(user_id, sub=12345), TEST_JWT_SECRET, algorithm="HS256"
        ),
        "tampered_payload": f"{head}.{forged_body}.{sig}",
        "truncated_signature": f"{head}.{body}.{sig[:-4]}",
        "garbage": "not.a.jwt",
        "empty_segments": "..",
    }


def _hmac_with(key: bytes, claims: dict[str, Any], alg: str = "HS256") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _deposit_with(
    stub: wallet_pb2_grpc.WalletServiceStub, metadata: tuple[tuple[str, str], ...]
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.Deposit(
            wallet_pb2.DepositRequest(amount="5.00", currency="USD", idempotency_key="auth-x"),
            metadata=metadata,
        )
    return info.value


def test_grpc_hostile_tokens_are_refused(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, unchanged: Unchanged
) -> None:
    victim = make_user()
    for name, token in _hostile_tokens(victim.user_id).items():
        with unchanged():
            error = _deposit_with(stub, bearer(token))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, name
        assert error_reason(error) in {"token_invalid", "token_expired"}, name
    # Control: a well-formed token with the same claims works.
    good = jwt.encode(_claims(victim.user_id), TEST_JWT_SECRET, algorithm="HS256")
    assert stub.GetBalance(wallet_pb2.GetBalanceRequest(), metadata=bearer(good)).balance == "0.00"


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"],
)
def test_grpc_missing_or_malformed_authorization(
    stub: wallet_pb2_grpc.WalletServiceStub, header: str, unchanged: Unchanged
) -> None:
    metadata = (("authorization", header),) if header else ()
    with unchanged():
        error = _deposit_with(stub, metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_rest_hostile_tokens_are_refused(
    make_user: MakeUser, rest: httpx.Client, unchanged: Unchanged
) -> None:
    victim = make_user()
    tokens = _hostile_tokens(victim.user_id)
    for name in ("alg_none", "rs256_foreign_key", "expired", "tampered_payload", "missing_exp"):
        with unchanged():
            response = rest.post(
                "/deposit",
                json={"amount": "5.00", "currency": "USD"},
                headers={"Authorization": f"Bearer {tokens[name]}", "Idempotency-Key": name},
            )
        assert response.status_code == 401, (name, response.text)
    with unchanged():
        response = rest.post("/deposit", json={"amount": "5.00", "currency": "USD"})
    assert response.status_code == 401


def test_role_claim_in_token_grants_nothing(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, unchanged: Unchanged
) -> None:
    """Even signed with the real secret, a `role: admin` claim is ignored: the role comes
    from the database."""
    user = make_user()
    forged = jwt.encode(
        _claims(user.user_id, role="admin", admin=True, scope="admin"),
        TEST_JWT_SECRET,
        algorithm="HS256",
    )
    with unchanged(), pytest.raises(grpc.RpcError) as info:
        stub.ListFlaggedTransactions(
            wallet_pb2.ListFlaggedTransactionsRequest(), metadata=bearer(forged)
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_token_of_deleted_user_stops_working(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, unchanged: Unchanged
) -> None:
    user = make_user()
    stub.DeleteAccount(wallet_pb2.DeleteAccountRequest(), metadata=user.metadata)
    with unchanged():
        error = _deposit_with(stub, user.metadata)
        with pytest.raises(grpc.RpcError) as relogin:
            login(stub, user.username)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert relogin.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_token_of_user_deleted_by_admin_stops_working(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    admin: Account,
    unchanged: Unchanged,
) -> None:
    user = make_user()
    deposit(stub, user, "10.00")
    stub.DeleteUser(wallet_pb2.DeleteUserRequest(username=user.username), metadata=admin.metadata)
    with unchanged():
        error = _deposit_with(stub, user.metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_demoted_admin_token_loses_admin_rights(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    wallet: RunningWallet,
    unchanged: Unchanged,
) -> None:
    user = make_user()
    set_role(wallet.store, user.user_id, "admin")
    request = wallet_pb2.ListFlaggedTransactionsRequest(limit=1)
    stub.ListFlaggedTransactions(request, metadata=user.metadata)  # works while admin
    set_role(wallet.store, user.user_id, "user")
    with unchanged(), pytest.raises(grpc.RpcError) as info:
        stub.ListFlaggedTransactions(request, metadata=user.metadata)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_brute_force_login_is_limited(
    stub: wallet_pb2_grpc.WalletServiceStub, unchanged: Unchanged
) -> None:
    name = register(stub)
    codes = []
    with unchanged():
        for attempt in range(8):
            with pytest.raises(grpc.RpcError) as info:
                stub.Login(wallet_pb2.LoginRequest(username=name, password=f"guess-{attempt}"))
            codes.append(info.value.code())
        # Locked: even the right password is refused for now.
        with pytest.raises(grpc.RpcError) as locked:
            login(stub, name)
    assert codes[:5] == [grpc.StatusCode.UNAUTHENTICATED] * 5
    assert set(codes[5:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(locked.value) == "too_many_attempts"


def test_rest_brute_force_login_is_limited(
    stub: wallet_pb2_grpc.WalletServiceStub,
    wallet: RunningWallet,
    start_gateway: StartGateway,
    unchanged: Unchanged,
) -> None:
    from gateway.settings import RateLimit

    url = start_gateway(wallet.addr, login_per_username=RateLimit(limit=3, window_seconds=60))
    name = register(stub)
    with httpx.Client(base_url=url, timeout=20) as client, unchanged():
        statuses = [
            client.post("/login", json={"username": name, "password": f"nope-{i}"}).status_code
            for i in range(5)
        ]
        blocked = client.post("/login", json={"username": name, "password": PASSWORD})
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]
    assert blocked.status_code == 429
    assert "Retry-After" in blocked.headers


def test_no_username_enumeration_through_login_messages(
    stub: wallet_pb2_grpc.WalletServiceStub, rest: httpx.Client
) -> None:
    name = register(stub)
    answers = []
    for username in (name, unique_name("ghost")):
        with pytest.raises(grpc.RpcError) as info:
            stub.Login(wallet_pb2.LoginRequest(username=username, password="wrong-password"))
        answers.append((info.value.code(), info.value.details(), error_reason(info.value)))
    assert answers[0] == answers[1]
    bodies = []
    for username in (name, unique_name("ghost")):
        response = rest.post("/login", json={"username": username, "password": "wrong-password"})
        assert response.status_code == 401
        body = response.json()
        body["error"].pop("request_id")
        bodies.append(body)
    assert bodies[0] == bodies[1]
    assert bodies[0]["error"]["code"] == "invalid_credentials"
