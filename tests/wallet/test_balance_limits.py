"""Balances are BIGINT: a movement that would take any balance (a user's, or the currency's
external account) past the signed 64-bit range is refused cleanly with
FAILED_PRECONDITION / 422 `balance_limit_exceeded`, and moves nothing; a MAX_AMOUNT that a
single movement could not store refuses to start. Driven by real deposits on a wallet of
its own (JPY, MAX_AMOUNT 2**62 yen), so no other test shares its near-full books."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from common.config import ConfigError
from tests.support import (
    CreateDatabase,
    RunningWallet,
    database_url,
    error_reason,
    new_user,
    running_gateway,
    start_wallet,
    stub_for,
    wallet_settings,
)
from wallet_service.ledger import verify_ledger

INT64_MAX = 2**63 - 1
HALF = 2**62  # MAX_AMOUNT below, in yen (JPY has no minor digits)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def big_wallet(
    request: pytest.FixtureRequest,
    fraud_addr: str,
    tmp_path_factory: pytest.TempPathFactory,
    pg_database_factory: CreateDatabase,
) -> Iterator[RunningWallet]:
    url = database_url(request.param, tmp_path_factory.mktemp("limits"), pg_database_factory)
    settings = wallet_settings(url, fraud_addr, SUPPORTED_CURRENCIES="JPY", MAX_AMOUNT=str(HALF))
    running = start_wallet(settings, request.param)
    yield running
    running.server.stop(0)


@pytest.fixture(scope="module")
def big_stub(big_wallet: RunningWallet) -> Iterator[wallet_pb2_grpc.WalletServiceStub]:
    with stub_for(big_wallet) as stub:
        yield stub


@pytest.fixture(scope="module")
def big_rest(big_wallet: RunningWallet) -> Iterator[httpx.Client]:
    with running_gateway(big_wallet.addr) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield client


def deposit(
    stub: wallet_pb2_grpc.WalletServiceStub, who: tuple[tuple[str, str], ...], yen: int
) -> wallet_pb2.MovementResponse:
    request = wallet_pb2.DepositRequest(
        amount=str(yen), currency="JPY", idempotency_key=uuid.uuid4().hex
    )
    return stub.Deposit(request, metadata=who)


def balances(wallet: RunningWallet) -> tuple[int, int]:
    """(sum of user balances, external balance) in JPY, straight from the database."""
    from sqlalchemy import func, select

    from wallet_service.schema import accounts

    with wallet.store.engine.connect() as conn:
        rows = dict(
            conn.execute(
                select(accounts.c.kind, func.sum(accounts.c.balance_minor))
                .where(accounts.c.currency == "JPY")
                .group_by(accounts.c.kind)
            ).all()
        )
    return int(rows.get("user", 0)), int(rows.get("external", 0))


def test_balances_stop_at_the_64_bit_limit_in_both_directions(
    big_wallet: RunningWallet,
    big_stub: wallet_pb2_grpc.WalletServiceStub,
    big_rest: httpx.Client,
) -> None:
    _, rich_md = new_user(big_stub)
    deposit(big_stub, rich_md, HALF)
    deposit(big_stub, rich_md, HALF - 1)  # the user now holds INT64_MAX yen exactly
    assert balances(big_wallet) == (INT64_MAX, -INT64_MAX)

    # The user's balance would pass the top of the range: refused, nothing moves.
    with pytest.raises(grpc.RpcError) as caught:
        deposit(big_stub, rich_md, 1)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(caught.value) == "balance_limit_exceeded"

    # Another user's deposit would take the external account past the bottom: refused too.
    _, other_md = new_user(big_stub)
    with pytest.raises(grpc.RpcError) as caught:
        deposit(big_stub, other_md, 2)
    assert error_reason(caught.value) == "balance_limit_exceeded"
    token = dict(other_md)["authorization"]
    response = big_rest.post(
        "/deposit",
        json={"amount": "2", "currency": "JPY"},
        headers={"Authorization": token, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "balance_limit_exceeded"
    assert balances(big_wallet) == (INT64_MAX, -INT64_MAX)

    # Money leaving still works, and the books are sound.
    big_stub.Withdraw(
        wallet_pb2.WithdrawRequest(amount="5", currency="JPY", idempotency_key="w1"),
        metadata=rich_md,
    )
    deposit(big_stub, other_md, 2)
    assert balances(big_wallet) == (INT64_MAX - 3, -(INT64_MAX - 3))
    assert verify_ledger(big_wallet.store) == []


def test_a_max_amount_no_balance_can_hold_refuses_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with pytest.raises(ConfigError, match=r"MAX_AMOUNT .* KWD"):
        wallet_settings(url, "", SUPPORTED_CURRENCIES="USD,KWD", MAX_AMOUNT="10000000000000000")
    with pytest.raises(ConfigError, match=r"MAX_AMOUNT .* JPY"):
        wallet_settings(url, "", SUPPORTED_CURRENCIES="JPY", MAX_AMOUNT=str(2**63))
    assert wallet_settings(url, "", SUPPORTED_CURRENCIES="JPY", MAX_AMOUNT=str(INT64_MAX))
