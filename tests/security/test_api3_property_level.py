"""API3:2023 Broken Object Property Level Authorization: no body can set role, balance,
status, flags or ids, and no response ever carries a password hash."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.support import PASSWORD, Account, MakeUser, RunningWallet, Unchanged, deposit, transfer
from wallet_service.schema import accounts, users

HASH_MARKERS = ("$argon2", "$scrypt", "password_hash", "pbkdf2")

MASS_ASSIGNMENT = {
    "role": "admin",
    "is_admin": True,
    "admin": True,
    "balance": "1000000.00",
    "balance_minor": 100000000,
    "status": "completed",
    "deleted": False,
    "deleted_at": None,
    "id": "00000000-0000-7000-8000-000000000001",
    "user_id": "00000000-0000-7000-8000-000000000001",
    "created_at": "2000-01-01T00:00:00Z",
    "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
}


def _user_row(wallet: RunningWallet, username: str) -> dict[str, object] | None:
    with wallet.store.engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == username)).one_or_none()
    return dict(row._mapping) if row else None


def _accounts_of(wallet: RunningWallet, user_id: str) -> list[tuple[str, int]]:
    with wallet.store.engine.connect() as conn:
        rows = conn.execute(
            select(accounts.c.currency, accounts.c.balance_minor).where(
                accounts.c.owner_user_id == user_id
            )
        ).all()
    return [(r.currency, int(r.balance_minor)) for r in rows]


def test_registration_cannot_set_role_balance_status_or_ids(
    rest: httpx.Client, wallet: RunningWallet
) -> None:
    username = f"mass_{uuid.uuid4().hex[:10]}"
    response = rest.post(
        "/register", json={"username": username, "password": PASSWORD, **MASS_ASSIGNMENT}
    )
    assert response.status_code in (201, 400, 422), response.text
    row = _user_row(wallet, username)
    if response.status_code != 201:
        assert row is None
        return
    assert row is not None
    assert row["role"] == "user"
    assert row["deleted_at"] is None
    assert row["id"] != MASS_ASSIGNMENT["id"]
    assert str(row["password_hash"]) != MASS_ASSIGNMENT["password_hash"]
    assert row["created_at"].year > 2000  # type: ignore[attr-defined]
    assert _accounts_of(wallet, str(row["id"])) == []
    assert "admin" not in response.text
    assert response.json()["user"]["id"] == row["id"]
    token = rest.post("/login", json={"username": username, "password": PASSWORD}).json()
    flagged = rest.get(
        "/admin/flagged", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert flagged.status_code == 403


@pytest.mark.parametrize("field", sorted(MASS_ASSIGNMENT))
def test_money_bodies_refuse_extra_properties(
    field: str,
    make_user: MakeUser,
    rest: httpx.Client,
    unchanged: Unchanged,
) -> None:
    user = make_user()
    other = make_user()
    bodies = {
        "/deposit": {"amount": "1.00", "currency": "USD"},
        "/withdraw": {"amount": "1.00", "currency": "USD"},
        "/transfer": {"amount": "1.00", "currency": "USD", "to_username": other.username},
    }
    for path, body in bodies.items():
        with unchanged():
            response = rest.post(
                path,
                json={**body, field: MASS_ASSIGNMENT[field]},
                headers={**user.auth_header, "Idempotency-Key": f"mass-{field}-{path}"},
            )
        assert response.status_code == 400, (path, field, response.text)


def test_movement_cannot_choose_flags_or_ids(
    make_user: MakeUser, rest: httpx.Client, unchanged: Unchanged
) -> None:
    user = make_user()
    for extra in (
        {"flagged": False},
        {"review_status": "cleared"},
        {"fraud_score": 0},
        {"transaction_id": "00000000-0000-7000-8000-000000000009"},
        {"from_username": "root_admin"},
        {"initiated_by": "someone"},
    ):
        with unchanged():
            response = rest.post(
                "/deposit",
                json={"amount": "20000.00", "currency": "USD", **extra},
                headers={**user.auth_header, "Idempotency-Key": f"flag-{next(iter(extra))}"},
            )
        assert response.status_code == 400, (extra, response.text)


def test_responses_never_include_password_hashes(
    stub: wallet_pb2_grpc.WalletServiceStub,
    make_user: MakeUser,
    admin: Account,
    rest: httpx.Client,
) -> None:
    alice, bob = make_user(), make_user()
    deposit(stub, alice, "20000.00")  # large: flagged, so it shows in the admin queue
    tx = transfer(stub, alice, bob, "5.00").transaction.id
    replies = [
        stub.ListTransactions(wallet_pb2.ListTransactionsRequest(), metadata=alice.metadata),
        stub.GetTransaction(
            wallet_pb2.GetTransactionRequest(transaction_id=tx), metadata=bob.metadata
        ),
        stub.ListFlaggedTransactions(
            wallet_pb2.ListFlaggedTransactionsRequest(limit=200), metadata=admin.metadata
        ),
        stub.ListBalances(wallet_pb2.ListBalancesRequest(), metadata=alice.metadata),
    ]
    for reply in replies:
        text = str(reply) + reply.SerializeToString().decode("latin-1")
        assert not any(marker in text for marker in HASH_MARKERS), type(reply).__name__
    name = f"hash_{uuid.uuid4().hex[:8]}"
    responses = [
        rest.post("/register", json={"username": name, "password": PASSWORD}),
        rest.post("/login", json={"username": name, "password": PASSWORD}),
        rest.get("/transactions", headers=alice.auth_header),
        rest.get(f"/transactions/{tx}", headers=alice.auth_header),
        rest.get("/balances", headers=alice.auth_header),
        rest.get("/admin/flagged", headers=admin.auth_header),
        rest.get("/admin/flagged", params={"include_deleted": "true"}, headers=admin.auth_header),
        rest.delete(f"/admin/users/{bob.username}", headers=admin.auth_header),
        rest.get("/openapi.json"),
    ]
    for response in responses:
        assert response.status_code < 500, response.text
        lowered = response.text.lower()
        assert "$argon2" not in lowered and "password_hash" not in lowered, response.request.url
    assert all(r.status_code in (200, 201) for r in responses), [r.status_code for r in responses]


# -- fraud and review fields are the wallet's secret (issue 10, defect 3) --------------------

FRAUD_AND_REVIEW_FIELDS = (
    "fraud_score",
    "fraud_decision",
    "fraud_reasons",
    "fraud_rules_version",
    "review_status",
    "reviewed_by",
    "reviewed_at",
    "review_note",
)


def _assert_no_fraud_internals(tx: wallet_pb2.Transaction) -> None:
    for name in FRAUD_AND_REVIEW_FIELDS:
        assert not getattr(tx, name), (name, tx)


def test_grpc_answers_show_fraud_and_review_fields_to_admins_only(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, admin: Account
) -> None:
    """The reasons quote the other party's balance and history: neither the sender nor the
    recipient may read them, over gRPC as over REST; `flagged` stays visible to both."""
    sender, recipient = make_user(), make_user()
    _assert_no_fraud_internals(deposit(stub, sender, "30000.00").transaction)
    sent = transfer(stub, sender, recipient, "15000.00").transaction
    assert sent.flagged
    _assert_no_fraud_internals(sent)
    stub.ReviewTransaction(
        wallet_pb2.ReviewTransactionRequest(
            transaction_id=sent.id, resolution="cleared", note="checked the other party"
        ),
        metadata=admin.metadata,
    )
    for party in (sender, recipient):
        seen = stub.GetTransaction(
            wallet_pb2.GetTransactionRequest(transaction_id=sent.id), metadata=party.metadata
        )
        assert seen.flagged
        _assert_no_fraud_internals(seen)
        listed = stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(), metadata=party.metadata
        )
        assert sent.id in {t.id for t in listed.transactions}
        for tx in listed.transactions:
            _assert_no_fraud_internals(tx)
    as_admin = stub.GetTransaction(
        wallet_pb2.GetTransactionRequest(transaction_id=sent.id), metadata=admin.metadata
    )
    assert as_admin.fraud_score > 0 and as_admin.fraud_decision == "REVIEW"
    assert as_admin.fraud_reasons and as_admin.fraud_rules_version
    assert as_admin.review_status == "cleared" and as_admin.reviewed_by == admin.user_id
    assert as_admin.review_note == "checked the other party" and as_admin.reviewed_at


def test_who_froze_a_user_and_why_is_for_admins_only(
    stub: wallet_pb2_grpc.WalletServiceStub, make_user: MakeUser, admin: Account
) -> None:
    user = make_user()
    by_admin = stub.FreezeUser(
        wallet_pb2.FreezeUserRequest(username=user.username, reason="internal case 42"),
        metadata=admin.metadata,
    )
    assert by_admin.frozen and by_admin.frozen_by == admin.user_id
    assert by_admin.frozen_reason == "internal case 42"
    own = stub.DeleteAccount(wallet_pb2.DeleteAccountRequest(), metadata=user.metadata)
    assert own.frozen and own.frozen_at  # the user may know they are frozen...
    assert own.frozen_by == "" and own.frozen_reason == ""  # ...not by whom or why
