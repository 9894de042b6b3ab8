"""API2:2023 Broken Authentication: forged, expired, incomplete and tampered tokens,
tokens of deleted or demoted users, brute-force login, and no username enumeration.
Each hostile request is refused and changes nothing in the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    StartWallet,
    Unchanged,
    bearer,
    deposit,
    error_reason,
    login,
    register,
    retry_delay_seconds,
    set_role_in_database,
    stub_for,
    unique_name,
    url_of,
)
from wallet_service.ledger import verify_ledger
from wallet_service.models import Role

ISSUER = "wallet_service"


def _claims(user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "nbf": now, "exp": now + 600}
    claims["iss"] = ISSUER
    claims["cv"] = 0  # a fresh user's credentials version
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
        "missing_cv": jwt.encode(_claims(user_id, cv=None), TEST_JWT_SECRET, algorithm="HS256"),
        "string_cv": jwt.encode(_claims(user_id, cv="0"), TEST_JWT_SECRET, algorithm="HS256"),
        "boolean_cv": jwt.encode(_claims(user_id, cv=False), TEST_JWT_SECRET, algorithm="HS256"),
        "future_cv": jwt.encode(_claims(user_id, cv=1), TEST_JWT_SECRET, algorithm="HS256"),
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
        assert error_reason(error) in {"token_invalid", "token_expired", "token_revoked"}, name
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
    set_role_in_database(wallet.store, user.user_id, "admin")
    request = wallet_pb2.ListFlaggedTransactionsRequest(limit=1)
    stub.ListFlaggedTransactions(request, metadata=user.metadata)  # works while admin
    set_role_in_database(wallet.store, user.user_id, "user")
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

    url = start_gateway(wallet.addr, login_per_username=RateLimit(limit=3, window_seconds=3600))
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


# -- the lockout holds under concurrency and across replicas ---------------------------------

MAX_FAILURES = 5  # LOGIN_MAX_FAILURES of the test wallets


def _login_answer(stub: wallet_pb2_grpc.WalletServiceStub, name: str, password: str) -> str:
    try:
        stub.Login(wallet_pb2.LoginRequest(username=name, password=password), timeout=60)
    except grpc.RpcError as error:
        return error_reason(error)
    return "ok"


def _burst(call: Callable[[int], str], size: int) -> list[str]:
    """`size` calls released together by a barrier, so they are in flight at once."""
    barrier = threading.Barrier(size, timeout=60)

    def run(index: int) -> str:
        barrier.wait()
        return call(index)

    with ThreadPoolExecutor(max_workers=size) as pool:
        return list(pool.map(run, range(size)))


def test_parallel_wrong_password_burst_gets_exactly_max_failures_verifications(
    stub: wallet_pb2_grpc.WalletServiceStub, unchanged: Unchanged
) -> None:
    """The attempt is reserved before the slow hash: 30 guesses in flight together get 5
    verifications, not one each (checked before, counted after: ~30)."""
    name = register(stub)
    with unchanged():
        answers = _burst(lambda i: _login_answer(stub, name, f"guess-{i}"), 30)
    assert answers.count("invalid_credentials") == MAX_FAILURES, answers
    assert answers.count("too_many_attempts") == 30 - MAX_FAILURES
    assert _login_answer(stub, name, PASSWORD) == "too_many_attempts"


def test_lockout_is_shared_by_replicas_on_one_database(
    wallet: RunningWallet, start_limited_wallet: StartWallet
) -> None:
    replica = start_limited_wallet(url=url_of(wallet))
    with grpc.insecure_channel(wallet.addr) as channel, stub_for(replica) as other:
        first = wallet_pb2_grpc.WalletServiceStub(channel)
        name = register(first)
        answers = [_login_answer((first, other)[i % 2], name, f"guess-{i}") for i in range(8)]
        assert answers == ["invalid_credentials"] * MAX_FAILURES + ["too_many_attempts"] * 3
        # Locked on both, even with the right password; a case variant is the same name.
        assert _login_answer(first, name, PASSWORD) == "too_many_attempts"
        assert _login_answer(other, name.upper(), PASSWORD) == "too_many_attempts"


def test_a_successful_login_clears_the_failures(stub: wallet_pb2_grpc.WalletServiceStub) -> None:
    name = register(stub)
    for round_ in range(3):  # 3 x (4 failures + 1 success) never reaches 5 failures in a row
        for attempt in range(MAX_FAILURES - 1):
            assert _login_answer(stub, name, f"nope-{round_}-{attempt}") == "invalid_credentials"
        assert _login_answer(stub, name, PASSWORD) == "ok"


def test_lockout_answers_carry_retry_info(stub: wallet_pb2_grpc.WalletServiceStub) -> None:
    name = register(stub)
    for attempt in range(MAX_FAILURES):
        _login_answer(stub, name, f"nope-{attempt}")
    with pytest.raises(grpc.RpcError) as locked:
        stub.Login(wallet_pb2.LoginRequest(username=name, password=PASSWORD))
    assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    delay = retry_delay_seconds(locked.value)
    assert delay is not None and 1 <= delay <= 300  # LOGIN_LOCKOUT_SECONDS default


def test_rest_wallet_lockout_is_429_with_retry_after(
    stub: wallet_pb2_grpc.WalletServiceStub, rest: httpx.Client
) -> None:
    """The wallet raised it (the gateway's own limits are relaxed here): Retry-After still."""
    name = register(stub)
    statuses = [
        rest.post("/login", json={"username": name, "password": f"no-{i}"}).status_code
        for i in range(MAX_FAILURES)
    ]
    locked = rest.post("/login", json={"username": name, "password": PASSWORD})
    assert statuses == [401] * MAX_FAILURES
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_many_attempts"
    assert 1 <= int(locked.headers["Retry-After"]) <= 300


# -- one identity per name (NFKC + casefold) ---------------------------------------------------


def _fullwidth(text: str) -> str:
    """The Unicode compatibility (fullwidth) form of ASCII text: NFKC maps it back."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _subject(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def _variants(name: str) -> list[str]:
    return [name.upper(), name.capitalize(), _fullwidth(name), _fullwidth(name.upper())]


def test_grpc_case_and_compat_variants_of_a_taken_name_are_refused(
    stub: wallet_pb2_grpc.WalletServiceStub, unchanged: Unchanged
) -> None:
    name = register(stub)
    for variant in _variants(name):
        with unchanged(), pytest.raises(grpc.RpcError) as info:
            register(stub, variant)
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS, variant
        assert error_reason(info.value) == "username_taken", variant


def test_rest_case_and_compat_variants_of_a_taken_name_are_refused(
    stub: wallet_pb2_grpc.WalletServiceStub, rest: httpx.Client, unchanged: Unchanged
) -> None:
    name = register(stub, unique_name("Bob"))  # registered with a capital: kept for display
    for variant in [name.lower(), *_variants(name)]:
        with unchanged():
            response = rest.post("/register", json={"username": variant, "password": PASSWORD})
        assert response.status_code == 409, (variant, response.text)
        assert response.json()["error"]["code"] == "username_taken"


def test_ligature_form_is_the_same_identity(
    stub: wallet_pb2_grpc.WalletServiceStub, unchanged: Unchanged
) -> None:
    name = register(stub, unique_name("fi"))
    ligature = "\ufb01" + name[2:]  # U+FB01 LATIN SMALL LIGATURE FI
    with unchanged(), pytest.raises(grpc.RpcError) as info:
        register(stub, ligature)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert _subject(login(stub, ligature)) == _subject(login(stub, name))


def test_login_with_any_variant_reaches_the_one_account(
    stub: wallet_pb2_grpc.WalletServiceStub, rest: httpx.Client
) -> None:
    name = register(stub, unique_name("Carol"))
    owner = _subject(login(stub, name))
    for variant in [name.lower(), *_variants(name)]:
        assert _subject(login(stub, variant)) == owner, variant
        response = rest.post("/login", json={"username": variant, "password": PASSWORD})
        assert response.status_code == 200, (variant, response.text)
        token = response.json()["access_token"]
        assert _subject(token) == owner, variant
        balance = rest.get("/balance", headers={"Authorization": f"Bearer {token}"})
        assert balance.json()["username"] == name  # the display form, as registered


def test_transfer_to_a_variant_reaches_the_registered_user(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    rest: httpx.Client,
    wallet: RunningWallet,
) -> None:
    sender, bob = make_user(), make_user()
    deposit(stub, sender, "10.00")
    sent = stub.Transfer(
        wallet_pb2.TransferRequest(
            to_username=bob.username.upper(), amount="3.00", currency="USD", idempotency_key="v1"
        ),
        metadata=sender.metadata,
    )
    assert sent.transaction.to_user == bob.username
    response = rest.post(
        "/transfer",
        json={"to_username": _fullwidth(bob.username), "amount": "2.00", "currency": "USD"},
        headers={**sender.auth_header, "Idempotency-Key": "v2"},
    )
    assert response.status_code == 201, response.text
    assert stub.GetBalance(wallet_pb2.GetBalanceRequest(), metadata=bob.metadata).balance == "5.00"
    assert verify_ledger(wallet.store) == []


def test_transfer_to_a_variant_of_oneself_is_a_self_transfer(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, unchanged: Unchanged
) -> None:
    user = make_user()
    deposit(stub, user, "10.00")
    with unchanged(), pytest.raises(grpc.RpcError) as info:
        stub.Transfer(
            wallet_pb2.TransferRequest(
                to_username=user.username.upper(), amount="1.00", currency="USD"
            ),
            metadata=user.metadata,
        )
    assert error_reason(info.value) == "self_transfer"


def test_lockout_counts_every_variant_of_the_name(
    stub: wallet_pb2_grpc.WalletServiceStub, unchanged: Unchanged
) -> None:
    """5 failures (LOGIN_MAX_FAILURES) spread over case and compatibility variants lock the
    one identity: alternating spellings does not give each its own counter."""
    name = register(stub)
    spellings = [name, _fullwidth(name), name.upper(), _fullwidth(name.upper()), name.title()]
    with unchanged():
        for i, spelling in enumerate(spellings):
            with pytest.raises(grpc.RpcError) as info:
                stub.Login(wallet_pb2.LoginRequest(username=spelling, password=f"bad-{i}"))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, spelling
        with pytest.raises(grpc.RpcError) as locked:
            login(stub, _fullwidth(name))
    assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(locked.value) == "too_many_attempts"


# -- revocation: password change, log out everywhere, role change -----------------------------


def _balance_error(stub: wallet_pb2_grpc.WalletServiceStub, token: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetBalance(wallet_pb2.GetBalanceRequest(), metadata=bearer(token))
    return info.value


def _works(stub: wallet_pb2_grpc.WalletServiceStub, token: str) -> bool:
    return bool(stub.GetBalance(wallet_pb2.GetBalanceRequest(), metadata=bearer(token)).username)


def _assert_revoked(stub: wallet_pb2_grpc.WalletServiceStub, token: str) -> None:
    error = _balance_error(stub, token)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(error) == "token_revoked"


def test_grpc_password_change_revokes_older_tokens(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser
) -> None:
    user = make_user()
    other_session = login(stub, user.username)
    reply = stub.ChangePassword(
        wallet_pb2.ChangePasswordRequest(
            current_password=PASSWORD, new_password="a brand new passphrase"
        ),
        metadata=user.metadata,
    )
    assert reply.token_type == "Bearer" and reply.expires_in > 0
    _assert_revoked(stub, user.token)
    _assert_revoked(stub, other_session)
    assert _works(stub, reply.access_token)
    with pytest.raises(grpc.RpcError) as old_password:
        login(stub, user.username)
    assert old_password.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _works(stub, login(stub, user.username, "a brand new passphrase"))


def test_rest_password_change_revokes_older_tokens(make_user: MakeUser, rest: httpx.Client) -> None:
    user = make_user()
    response = rest.post(
        "/me/password",
        json={"current_password": PASSWORD, "new_password": "another good passphrase"},
        headers=user.auth_header,
    )
    assert response.status_code == 200, response.text
    fresh = response.json()["access_token"]
    old = rest.get("/balance", headers=user.auth_header)
    assert old.status_code == 401
    assert old.json()["error"]["code"] == "token_revoked"
    assert rest.get("/balance", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    relogin = rest.post(
        "/login", json={"username": user.username, "password": "another good passphrase"}
    )
    assert relogin.status_code == 200


def test_wrong_current_password_changes_nothing_and_counts_toward_lockout(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    rest: httpx.Client,
    unchanged: Unchanged,
) -> None:
    user = make_user()
    codes = []
    with unchanged():
        for i in range(5):
            with pytest.raises(grpc.RpcError) as info:
                stub.ChangePassword(
                    wallet_pb2.ChangePasswordRequest(
                        current_password=f"guess-{i}-xxxx", new_password="whatever passphrase"
                    ),
                    metadata=user.metadata,
                )
            codes.append((info.value.code(), error_reason(info.value)))
        locked = rest.post(
            "/me/password",
            json={"current_password": PASSWORD, "new_password": "whatever passphrase"},
            headers=user.auth_header,
        )
    assert codes == [(grpc.StatusCode.UNAUTHENTICATED, "invalid_credentials")] * 5
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_many_attempts"
    assert _works(stub, user.token)  # a failed change revokes nothing


def test_new_password_follows_the_registration_policy(
    make_user: MakeUser, rest: httpx.Client, unchanged: Unchanged
) -> None:
    user = make_user()
    with unchanged():
        response = rest.post(
            "/me/password",
            json={"current_password": PASSWORD, "new_password": "short"},
            headers=user.auth_header,
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "weak_password"


def test_grpc_logout_all_revokes_every_token(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser
) -> None:
    user = make_user()
    second = login(stub, user.username)
    stub.LogoutAll(wallet_pb2.LogoutAllRequest(), metadata=bearer(second))
    _assert_revoked(stub, user.token)
    _assert_revoked(stub, second)
    assert _works(stub, login(stub, user.username))


def test_rest_logout_revokes_every_token(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, rest: httpx.Client
) -> None:
    user = make_user()
    second = login(stub, user.username)
    response = rest.post("/logout", headers=user.auth_header)
    assert response.status_code == 200, response.text
    assert response.json() == {"msg": "Logged out everywhere"}
    for token in (user.token, second):
        after = rest.get("/balance", headers={"Authorization": f"Bearer {token}"})
        assert after.status_code == 401
        assert after.json()["error"]["code"] == "token_revoked"
    assert rest.post("/logout", headers=user.auth_header).status_code == 401
    assert _works(stub, login(stub, user.username))


def test_role_change_revokes_older_tokens(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    wallet: RunningWallet,
    rest: httpx.Client,
) -> None:
    user = make_user()
    wallet.store.set_role(user_id=user.user_id, role=Role.ADMIN)
    _assert_revoked(stub, user.token)  # a promotion does not upgrade tokens already out
    admin_token = login(stub, user.username)
    request = wallet_pb2.ListFlaggedTransactionsRequest(limit=1)
    stub.ListFlaggedTransactions(request, metadata=bearer(admin_token))
    wallet.store.set_role(user_id=user.user_id, role=Role.USER)
    response = rest.get("/admin/flagged", headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_revoked"
    with pytest.raises(grpc.RpcError) as info:
        stub.ListFlaggedTransactions(request, metadata=bearer(login(stub, user.username)))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
