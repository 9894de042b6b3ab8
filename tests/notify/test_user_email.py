"""Users' own notifications: an optional email (PUT /me/email, gRPC SetEmail), validated,
shown to the user themself and to admins only, and `transfer.received` mailed to the
recipient who gave one (a real SMTP server on loopback), on both stores."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import grpc
import httpx
import pytest
from wallet.v1 import wallet_pb2

from common.processes import wait_for
from tests.support import (
    PASSWORD,
    StartGateway,
    admin_auth,
    assert_error,
    deposit,
    expect_error,
    login,
    register,
    transfer,
    unique_name,
)
from tests.support.grpc_clients import Account
from tests.support.notify import SmtpCatcher, worker_env
from wallet_service.emails import normalized_email
from wallet_service.events import OutboxStatus

HANG_GUARD = 60.0


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("Alice.B+tag@Example.COM", "Alice.B+tag@example.com"),
        ("bob@localhost", "bob@localhost"),
        ("a@b@c.test", None),
        ("a b@c.test", None),
        ("a@c.test\r\nBcc: everyone@c.test", None),
        ("a@c.test,b@c.test", None),
        (".a@c.test", None),
        ("a..b@c.test", None),
        ("a@-c.test", None),
        ("@c.test", None),
        ("a@", None),
        ("x" * 65 + "@c.test", None),
        ("a@" + ".".join(["c" * 60] * 5) + ".test", None),  # over 254 characters
        ("élise@c.test", None),
    ],
)
def test_email_addresses_accepted(text: str, stored: str | None) -> None:
    assert normalized_email(text) == stored


def test_own_email_is_set_validated_cleared_and_private_through_rest(
    gateway_url: str, stub: Any
) -> None:
    name = register(stub)
    auth = {"Authorization": f"Bearer {login(stub, name)}"}
    with httpx.Client(base_url=gateway_url, timeout=HANG_GUARD) as api:
        ok = api.put("/me/email", json={"email": "Me@Example.TEST"}, headers=auth)
        assert ok.status_code == 200, ok.text
        assert ok.json()["user"]["email"] == "Me@example.test"
        assert_error(
            api.put("/me/email", json={"email": "me@x.test\nBcc: y@x.test"}, headers=auth),
            400,
            "invalid_email",
        )
        unknown = api.put("/me/email", json={"email": "a@b.test", "cc": "x"}, headers=auth)
        assert unknown.status_code == 400
        assert api.put("/me/email", json={"email": "a@b.test"}).status_code == 401
        cleared = api.put("/me/email", json={"email": ""}, headers=auth)
        assert cleared.json()["user"]["email"] is None


def test_registration_takes_an_optional_email_validated_before_anything_is_written(
    gateway_url: str, stub: Any
) -> None:
    name = unique_name("mail")
    with httpx.Client(base_url=gateway_url, timeout=HANG_GUARD) as api:
        bad = {"username": name, "password": PASSWORD, "email": "a@c.test\r\nBcc: x@c.test"}
        assert_error(api.post("/register", json=bad), 400, "invalid_email")
        good = {"username": name, "password": PASSWORD, "email": "Reg@Example.TEST"}
        created = api.post("/register", json=good)
        assert created.status_code == 201, created.text  # the refused attempt wrote nothing
    own = stub.SetEmail(  # what is stored, read back through the user's own reply
        wallet_pb2.SetEmailRequest(email="Reg@Example.TEST"),
        metadata=(("authorization", f"Bearer {login(stub, name)}"),),
    )
    assert own.email == "Reg@example.test"
    other = unique_name("mail")
    reply = stub.Register(
        wallet_pb2.RegisterRequest(username=other, password=PASSWORD, email="o@x.test")
    )
    assert reply.user.email == "o@x.test"
    frozen = stub.FreezeUser(
        wallet_pb2.FreezeUserRequest(username=other, reason="check"), metadata=admin_auth(stub)
    )
    assert frozen.email == "o@x.test"  # stored at registration, seen by admins


def test_the_user_and_admins_see_the_email(stub: Any) -> None:
    name = register(stub)
    own = stub.SetEmail(
        wallet_pb2.SetEmailRequest(email="private@x.test"),
        metadata=(("authorization", f"Bearer {login(stub, name)}"),),
    )
    assert own.email == "private@x.test"
    frozen = stub.FreezeUser(
        wallet_pb2.FreezeUserRequest(username=name, reason="check"), metadata=admin_auth(stub)
    )
    assert frozen.email == "private@x.test"
    expect_error(
        lambda: stub.SetEmail(wallet_pb2.SetEmailRequest(email="nope")),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_missing",
    )


def _account(stub: Any) -> Account:
    name = register(stub)
    token = login(stub, name)
    return Account(name, "", (("authorization", f"Bearer {token}"),), token)


def test_a_transfer_is_mailed_to_the_recipient_who_gave_an_email(
    make_wallet: Any, fraud_addr: str, smtp: SmtpCatcher, start_gateway: StartGateway
) -> None:
    running, stub = make_wallet(
        fraud_addr, **worker_env(SMTP_URL=smtp.url, MAIL_FROM="wallet@example.test")
    )
    sender, silent, mailed = _account(stub), _account(stub), _account(stub)
    with httpx.Client(base_url=start_gateway(running.addr), timeout=HANG_GUARD) as api:
        set_email = api.put(
            "/me/email", json={"email": "mailed@example.test"}, headers=mailed.auth_header
        )
        assert set_email.status_code == 200, set_email.text
    deposit(stub, sender, "100.00")
    transfer(stub, sender, silent, "1.00")
    tx_id = transfer(stub, sender, mailed, "12.50").transaction.id
    assert wait_for(lambda: running.store.outbox_counts()[OutboxStatus.PENDING] == 0, HANG_GUARD), (
        running.store.outbox_counts()
    )
    assert running.store.outbox_counts()[OutboxStatus.SENT] == 2  # two transfer.received
    [envelope] = smtp.accepted  # the recipient without an email got none
    assert envelope.rcpt_tos == ["mailed@example.test"]
    message = email.message_from_bytes(
        envelope.original_content or b"", policy=email.policy.default
    )
    [received] = [
        e.event
        for e in running.store.list_outbox(status=OutboxStatus.SENT, limit=10)
        if e.event.data["transaction_id"] == tx_id
    ]
    assert message["X-Wallet-Event-Id"] == received.id
    text = message.get_body().get_content()  # type: ignore[union-attr]
    assert "12.50 USD" in text and sender.username in text and tx_id in text
