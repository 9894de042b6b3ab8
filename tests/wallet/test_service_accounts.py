"""Service accounts over real gRPC on both stores: creation (the secret shown once and
stored as an argon2id hash), the client-credentials grant, rotation with a grace period,
and disabling, which stops the account's tokens at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import jwt
import pytest
from sqlalchemy import select
from wallet.v1 import wallet_pb2 as pb

from tests.support import (
    ADMIN_USERNAME,
    TEST_JWT_SECRET,
    Account,
    RunningWallet,
    Stub,
    bearer,
    create_service_account,
    expect_error,
    new_user,
    service_auth,
    service_token,
    unique_name,
)
from wallet_service.auth import TokenIssuer
from wallet_service.errors import Unauthenticated
from wallet_service.schema import service_accounts
from wallet_service.service_accounts import ServiceAccounts


def test_the_secret_is_shown_once_and_stored_only_as_a_hash(
    stub: Stub, admin: Account, wallet: RunningWallet
) -> None:
    client = create_service_account(stub, admin.metadata, ["balances:read", "deposits:write"])
    assert client.secret.startswith("wsk_")
    listed = stub.ListServiceAccounts(pb.ListServiceAccountsRequest(), metadata=admin.metadata)
    mine = [a for a in listed.accounts if a.id == client.client_id]
    assert [(a.name, list(a.scopes), a.disabled) for a in mine] == [
        (client.name, ["balances:read", "deposits:write"], False)
    ]
    assert client.secret not in str(listed)
    with wallet.store.engine.connect() as conn:
        row = conn.execute(
            select(service_accounts).where(service_accounts.c.id == client.client_id)
        ).one()
    assert row.secret_hash.startswith("$argon2id$")
    assert client.secret not in " ".join(str(v) for v in row)


def test_the_token_carries_the_scopes_and_names_the_service(stub: Stub, admin: Account) -> None:
    client = create_service_account(stub, admin.metadata, ["transfers:write"])
    reply = stub.IssueServiceToken(
        pb.IssueServiceTokenRequest(client_id=client.client_id, client_secret=client.secret)
    )
    assert (reply.token_type, reply.scope) == ("Bearer", "transfers:write")
    assert reply.expires_in > 0
    claims = jwt.decode(reply.access_token, TEST_JWT_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["typ"], claims["scope"]) == (
        client.client_id,
        "service",
        "transfers:write",
    )


def test_wrong_or_unknown_credentials_get_one_answer(stub: Stub, admin: Account) -> None:
    client = create_service_account(stub, admin.metadata, ["balances:read"])
    for client_id, secret in [
        (client.client_id, client.secret + "x"),
        (client.client_id, ""),
        ("0190aaaa-0000-7000-8000-000000000000", client.secret),
        ("not-an-id", client.secret),
    ]:
        expect_error(
            partial(service_token, stub, client_id, secret),
            grpc.StatusCode.UNAUTHENTICATED,
            "invalid_client",
        )


def test_unknown_scopes_and_bad_names_are_refused(stub: Stub, admin: Account) -> None:
    for name, scopes, reason in [
        ("payroll-x", ["money:everything"], "invalid_scope"),
        ("payroll-y", [], "invalid_scope"),
        ("Bad Name!", ["balances:read"], "invalid_name"),
    ]:
        expect_error(
            partial(
                stub.CreateServiceAccount,
                pb.CreateServiceAccountRequest(name=name, scopes=scopes),
                metadata=admin.metadata,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
        )
    taken = create_service_account(stub, admin.metadata, ["balances:read"])
    expect_error(
        lambda: create_service_account(stub, admin.metadata, ["balances:read"], name=taken.name),
        grpc.StatusCode.ALREADY_EXISTS,
        "service_account_exists",
    )


def test_a_rotated_secret_works_during_the_grace_period(stub: Stub, admin: Account) -> None:
    client = create_service_account(stub, admin.metadata, ["balances:read"])
    rotated = stub.RotateServiceAccountSecret(
        pb.RotateServiceAccountSecretRequest(id=client.client_id, grace_seconds=3600),
        metadata=admin.metadata,
    )
    assert rotated.client_secret != client.secret
    assert rotated.account.previous_secret_valid_until
    assert service_token(stub, client.client_id, client.secret)
    assert service_token(stub, client.client_id, rotated.client_secret)


def test_a_rotated_secret_without_grace_stops_at_once(stub: Stub, admin: Account) -> None:
    client = create_service_account(stub, admin.metadata, ["balances:read"])
    rotated = stub.RotateServiceAccountSecret(
        pb.RotateServiceAccountSecretRequest(id=client.client_id, grace_seconds=0),
        metadata=admin.metadata,
    )
    expect_error(
        lambda: service_token(stub, client.client_id, client.secret),
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid_client",
    )
    assert service_token(stub, client.client_id, rotated.client_secret)


def test_the_grace_period_ends_on_the_clock(
    stub: Stub, admin: Account, wallet: RunningWallet
) -> None:
    """The use case with an injected clock over the real store: valid up to the end of the
    grace period, refused from then on (no sleeping on wall time)."""
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    accounts = ServiceAccounts(
        store=wallet.store, tokens=TokenIssuer(TEST_JWT_SECRET, 60), clock=lambda: now[0]
    )
    caller = wallet.store.get_user_by_username(ADMIN_USERNAME)
    assert caller is not None
    created = accounts.create(caller, name=unique_name("clock"), scopes=["balances:read"])
    accounts.rotate(caller, account_id=created.account.id, grace_seconds=600)
    now[0] += timedelta(seconds=599)
    assert accounts.issue_token(client_id=created.account.id, client_secret=created.secret)
    now[0] += timedelta(seconds=1)
    with pytest.raises(Unauthenticated) as refused:
        accounts.issue_token(client_id=created.account.id, client_secret=created.secret)
    assert refused.value.code == "invalid_client"


def test_a_disabled_accounts_token_stops_at_once(stub: Stub, admin: Account) -> None:
    client = create_service_account(stub, admin.metadata, ["balances:read"])
    auth = service_auth(stub, client)
    # Authenticated (the refusal is about the kind of caller, not the token) ...
    expect_error(
        lambda: stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth),
        grpc.StatusCode.PERMISSION_DENIED,
        "user_token_required",
    )
    disabled = stub.DisableServiceAccount(
        pb.DisableServiceAccountRequest(id=client.client_id), metadata=admin.metadata
    )
    assert disabled.disabled and disabled.disabled_at
    # ... and after the disable, the same unexpired token is no longer anyone.
    expect_error(
        lambda: stub.GetBalance(pb.GetBalanceRequest(currency="USD"), metadata=auth),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_revoked",
    )
    expect_error(
        lambda: service_token(stub, client.client_id, client.secret),
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid_client",
    )


def test_a_service_token_cannot_administer(stub: Stub, admin: Account) -> None:
    client = create_service_account(stub, admin.metadata, ["balances:read"])
    expect_error(
        lambda: stub.ListServiceAccounts(
            pb.ListServiceAccountsRequest(), metadata=service_auth(stub, client)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "user_token_required",
    )


def test_users_cannot_administer_service_accounts(stub: Stub) -> None:
    _, user = new_user(stub)
    expect_error(
        lambda: stub.CreateServiceAccount(
            pb.CreateServiceAccountRequest(name="sneaky", scopes=["deposits:write"]),
            metadata=user,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "admin_required",
    )
    forged = jwt.encode(
        {"sub": "x", "cv": 0, "iat": 1, "exp": 2**31, "iss": "wallet_service", "typ": "robot"},
        TEST_JWT_SECRET,
        algorithm="HS256",
    )
    expect_error(
        lambda: stub.ListBalances(pb.ListBalancesRequest(), metadata=bearer(forged)),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_invalid",
    )
