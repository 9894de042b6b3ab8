"""Authentication and object-level authorization over real gRPC."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import jwt
import pytest
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from tests.support import (
    ADMIN_USERNAME,
    TEST_JWT_SECRET,
    Metadata,
    RunningWallet,
    admin_auth,
    bearer,
    expect_error,
    login,
    new_user,
)

Stub = wallet_pb2_grpc.WalletServiceStub


def user_id(stub: Stub, auth: tuple[tuple[str, str], ...]) -> str:
    """The caller's id, read from its own token's subject."""
    token = auth[0][1].split()[1]
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def forged(claims: dict[str, object], *, secret: str = TEST_JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def valid_claims(subject: str, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": "wallet_service",
        "cv": 0,  # a fresh user's credentials version
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_every_private_rpc_needs_a_token(stub: Stub) -> None:
    calls: list[Callable[[Metadata], object]] = [
        lambda md: stub.GetBalance(pb.GetBalanceRequest(), metadata=md),
        lambda md: stub.ListBalances(pb.ListBalancesRequest(), metadata=md),
        lambda md: stub.Deposit(pb.DepositRequest(amount="1", currency="USD"), metadata=md),
        lambda md: stub.Withdraw(pb.WithdrawRequest(amount="1", currency="USD"), metadata=md),
        lambda md: stub.Transfer(
            pb.TransferRequest(to_username="x", amount="1", currency="USD"), metadata=md
        ),
        lambda md: stub.ListTransactions(pb.ListTransactionsRequest(), metadata=md),
        lambda md: stub.GetTransaction(pb.GetTransactionRequest(transaction_id="x"), metadata=md),
        lambda md: stub.DeleteAccount(pb.DeleteAccountRequest(), metadata=md),
        lambda md: stub.ListFlaggedTransactions(pb.ListFlaggedTransactionsRequest(), metadata=md),
    ]
    for call in calls:
        expect_error(partial(call, ()), grpc.StatusCode.UNAUTHENTICATED, "token_missing")
        expect_error(
            partial(call, (("authorization", "Basic abc"),)),
            grpc.StatusCode.UNAUTHENTICATED,
            "token_invalid",
        )


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_bad_tokens_are_refused(stub: Stub) -> None:
    _, auth = new_user(stub)
    sub = user_id(stub, auth)
    token = auth[0][1].split()[1]
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    none_alg = jwt.encode(valid_claims(sub), key="", algorithm="none")  # type: ignore[arg-type]
    bad = {
        "tampered signature": tampered,
        "alg none": none_alg,
        "wrong secret": forged(valid_claims(sub), secret="another-secret-" + "y" * 40),
        "HS512 (not on the allowed list)": forged(valid_claims(sub), alg="HS512"),
        "missing exp": forged(valid_claims(sub, exp=None)),
        "missing iat": forged(valid_claims(sub, iat=None)),
        "missing sub": forged(valid_claims(sub, sub=None)),
        "missing cv": forged(valid_claims(sub, cv=None)),
        "stale cv": forged(valid_claims(sub, cv=7)),
        "wrong issuer": forged(valid_claims(sub, iss="someone-else")),
        "not yet valid": forged(valid_claims(sub, nbf=int(time.time()) + 3600)),
        "unknown user": forged(valid_claims("01900000-0000-7000-8000-000000000000")),
        "garbage": "not.a.jwt",
    }
    for label, bad_token in bad.items():
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetBalance(pb.GetBalanceRequest(), metadata=bearer(bad_token))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, label
    expired = forged(
        valid_claims(sub, iat=int(time.time()) - 7200, nbf=None, exp=int(time.time()) - 3600)
    )
    expect_error(
        lambda: stub.GetBalance(pb.GetBalanceRequest(), metadata=bearer(expired)),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_expired",
    )


def test_a_role_claim_in_the_token_is_ignored(stub: Stub) -> None:
    _, auth = new_user(stub)
    token = forged(valid_claims(user_id(stub, auth), role="admin", is_admin=True))
    expect_error(
        lambda: stub.ListFlaggedTransactions(
            pb.ListFlaggedTransactionsRequest(), metadata=bearer(token)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "admin_required",
    )


def test_users_cannot_touch_each_others_money(stub: Stub, wallet: RunningWallet) -> None:
    alice, alice_auth = new_user(stub)
    bob, bob_auth = new_user(stub)
    deposit = stub.Deposit(pb.DepositRequest(amount="50.00", currency="USD"), metadata=bob_auth)
    bob_tx = deposit.transaction.id
    # Alice can neither read Bob's transaction (404, so ids cannot be probed) ...
    expect_error(
        lambda: stub.GetTransaction(
            pb.GetTransactionRequest(transaction_id=bob_tx), metadata=alice_auth
        ),
        grpc.StatusCode.NOT_FOUND,
        "transaction_not_found",
    )
    # ... nor list it, nor list Bob's history by name, nor act on it as if admin.
    mine = stub.ListTransactions(pb.ListTransactionsRequest(), metadata=alice_auth)
    assert bob_tx not in {t.id for t in mine.transactions}
    expect_error(
        lambda: stub.ListTransactions(
            pb.ListTransactionsRequest(username=bob), metadata=alice_auth
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "admin_required",
    )
    for call in (
        lambda: stub.ReverseTransaction(
            pb.ReverseTransactionRequest(transaction_id=bob_tx, reason="x"), metadata=alice_auth
        ),
        lambda: stub.DeleteTransaction(
            pb.DeleteTransactionRequest(transaction_id=bob_tx), metadata=alice_auth
        ),
        lambda: stub.ReviewTransaction(
            pb.ReviewTransactionRequest(transaction_id=bob_tx, resolution="cleared"),
            metadata=alice_auth,
        ),
    ):
        expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "admin_required")
    # Balances are always the caller's own.
    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=alice_auth).balance == (
        "0.00"
    )
    assert stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=bob_auth).balance == (
        "50.00"
    )
    assert alice != bob
    assert wallet.store.get_transaction(bob_tx) is not None


def test_admin_rpcs_refuse_normal_users(stub: Stub) -> None:
    _, auth = new_user(stub)
    admin_calls = [
        lambda: stub.ListFlaggedTransactions(pb.ListFlaggedTransactionsRequest(), metadata=auth),
        lambda: stub.ReviewTransaction(
            pb.ReviewTransactionRequest(transaction_id="x", resolution="cleared"), metadata=auth
        ),
        lambda: stub.ReverseTransaction(
            pb.ReverseTransactionRequest(transaction_id="x"), metadata=auth
        ),
        lambda: stub.DeleteTransaction(
            pb.DeleteTransactionRequest(transaction_id="x"), metadata=auth
        ),
        lambda: stub.DeleteUser(pb.DeleteUserRequest(username=ADMIN_USERNAME), metadata=auth),
        lambda: stub.ListTransactions(
            pb.ListTransactionsRequest(include_deleted=True), metadata=auth
        ),
    ]
    for call in admin_calls:
        expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "admin_required")


def test_registration_never_creates_an_admin(stub: Stub) -> None:
    reply = stub.Register(
        pb.RegisterRequest(
            username="admin_wannabe_" + str(int(time.time())), password="password-123"
        )
    )
    assert reply.user.role == "user"


def test_admin_deletes_a_user_whose_token_then_stops_working(stub: Stub) -> None:
    admin = admin_auth(stub)
    victim, victim_auth = new_user(stub)
    stub.GetBalance(pb.GetBalanceRequest(), metadata=victim_auth)
    deleted = stub.DeleteUser(pb.DeleteUserRequest(username=victim), metadata=admin)
    assert deleted.deleted
    expect_error(
        lambda: stub.GetBalance(pb.GetBalanceRequest(), metadata=victim_auth),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_invalid",
    )
    expect_error(
        lambda: stub.DeleteUser(pb.DeleteUserRequest(username=ADMIN_USERNAME), metadata=admin),
        grpc.StatusCode.FAILED_PRECONDITION,
        "cannot_delete_self",
    )


def test_login_is_rate_limited_per_username(stub: Stub) -> None:
    name, _ = new_user(stub)
    for _ in range(5):
        expect_error(
            lambda: stub.Login(pb.LoginRequest(username=name, password="bad-password")),
            grpc.StatusCode.UNAUTHENTICATED,
            "invalid_credentials",
        )
    # Now even the right password waits: the limit is on the account, not the guess.
    expect_error(lambda: login(stub, name), grpc.StatusCode.RESOURCE_EXHAUSTED, "too_many_attempts")
    other, _ = new_user(stub)  # another user is not affected
    assert login(stub, other)


def test_unknown_and_wrong_password_look_the_same(stub: Stub) -> None:
    name, _ = new_user(stub)
    unknown = expect_error(
        lambda: stub.Login(pb.LoginRequest(username="ghost_" + name, password="whatever-123")),
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid_credentials",
    )
    wrong = expect_error(
        lambda: stub.Login(pb.LoginRequest(username=name, password="whatever-123")),
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid_credentials",
    )
    assert unknown.details() == wrong.details()


def test_token_lifetime_matches_settings(stub: Stub) -> None:
    name, _ = new_user(stub)
    reply = stub.Login(pb.LoginRequest(username=name, password="correct horse battery"))
    claims = jwt.decode(
        reply.access_token, TEST_JWT_SECRET, algorithms=["HS256"], issuer="wallet_service"
    )
    assert reply.token_type == "Bearer" and reply.expires_in == 3600
    assert claims["exp"] - claims["iat"] == 3600
    issued = datetime.fromtimestamp(claims["iat"], UTC)
    assert abs(issued - datetime.now(UTC)) < timedelta(minutes=1)
