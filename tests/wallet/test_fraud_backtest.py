"""Backtests through the wallet (gRPC), on both wallet stores: a seeded history made by
the real wallet (features stored with each scored movement, verdicts, reviews), a draft
replayed on it with exact counts per rule, against the live verdicts and the reviews;
the range's bounds; admins only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from wallet.v1 import wallet_pb2 as pb

from fraud_service.server import FraudServer
from tests.support import (
    Metadata,
    RunningWallet,
    Stub,
    admin_auth,
    expect_error,
    new_user,
    start_fraud,
)
from wallet_service.models import MovementFeatures


@dataclass
class History:
    wallet: RunningWallet
    stub: Stub
    admin: Metadata
    fraud_admin: fraud_pb2_grpc.FraudAdminStub
    ids: dict[str, str]  # name -> transaction id


@pytest.fixture
def fraud() -> Iterator[FraudServer]:
    server = start_fraud()  # a store of its own: this test's drafts reach nobody else
    yield server
    server.stop(None)


def money(stub: Stub, auth: Metadata, amount: str, to: str | None = None) -> str:
    if to is None:
        reply = stub.Deposit(pb.DepositRequest(amount=amount, currency="USD"), metadata=auth)
    else:
        request = pb.TransferRequest(to_username=to, amount=amount, currency="USD")
        reply = stub.Transfer(request, metadata=auth)
    return str(reply.transaction.id)


def review(history: History, name: str, resolution: str) -> None:
    request = pb.ReviewTransactionRequest(transaction_id=history.ids[name], resolution=resolution)
    history.stub.ReviewTransaction(request, metadata=history.admin)


@pytest.fixture
def history(make_wallet: Any, fraud: FraudServer) -> Iterator[History]:
    """Live rules are the seed (large_amount at 10,000 USD; new_account from 5,000 USD for
    a day-old account). Alice: 100, 600, 12,000 (flagged, confirmed_fraud). Bob: 700,
    15,000 (flagged, cleared), then 550 to Alice. Six scored movements."""
    wallet, stub = make_wallet(f"127.0.0.1:{fraud.port}")
    alice, alice_auth = new_user(stub)
    _, bob_auth = new_user(stub)
    ids = {
        "a100": money(stub, alice_auth, "100.00"),
        "a600": money(stub, alice_auth, "600.00"),
        "a12000": money(stub, alice_auth, "12000.00"),
        "b700": money(stub, bob_auth, "700.00"),
        "b15000": money(stub, bob_auth, "15000.00"),
        "b550": money(stub, bob_auth, "550.00", to=alice),
    }
    admin = admin_auth(stub)
    channel = grpc.insecure_channel(wallet.addr)
    built = History(wallet, stub, admin, fraud_pb2_grpc.FraudAdminStub(channel), ids)
    review(built, "a12000", "confirmed_fraud")
    review(built, "b15000", "cleared")
    yield built
    channel.close()


def window(days: float = 1) -> tuple[str, str]:
    now = datetime.now(UTC)
    return (now - timedelta(days=days)).isoformat(), (now + timedelta(minutes=1)).isoformat()


def create_draft(history: History) -> int:
    draft = history.fraud_admin.CreateRuleSet(
        fraud_pb2.CreateRuleSetRequest(
            description="large amounts from 500 USD; velocity from 3 an hour",
            rules=[
                fraud_pb2.Rule(kind="large_amount", params={"threshold": "500"}),
                fraud_pb2.Rule(kind="velocity", params={"max_movements_per_hour": "3"}),
            ],
        ),
        metadata=history.admin,
    )
    return int(draft.version)


def backtest(history: History, version: int, since: str, until: str) -> pb.BacktestRuleSetResponse:
    request = pb.BacktestRuleSetRequest(version=version, since=since, until=until)
    reply: pb.BacktestRuleSetResponse = history.stub.BacktestRuleSet(
        request, metadata=history.admin, timeout=30
    )
    return reply


def counts(reply: pb.BacktestRuleSetResponse) -> dict[str, int]:
    names = [f.name for f in reply.DESCRIPTOR.fields if f.name not in ("since", "until", "rules")]
    return {name: getattr(reply, name) for name in names}


def test_each_scored_movement_stores_the_features_it_was_scored_with(history: History) -> None:
    since, until = window()
    stored = history.wallet.store.scored_transactions(
        since=datetime.fromisoformat(since), until=datetime.fromisoformat(until), limit=100
    )
    by_id = {s.transaction.id: s.features for s in stored}
    assert set(by_id) == set(history.ids.values())
    third: MovementFeatures = by_id[history.ids["a12000"]]
    assert (third.count_last_hour, third.sum_last_hour_minor) == (2, 70_000)
    assert third.recent_day_amounts_minor == (60_000, 10_000)
    transfer = by_id[history.ids["b550"]]
    assert (transfer.count_last_hour, transfer.balance_minor) == (2, 1_570_000)


def test_a_draft_is_backtested_per_rule_against_live_verdicts_and_reviews(
    history: History,
) -> None:
    version = create_draft(history)
    reply = backtest(history, version, *window())
    assert counts(reply) == {
        "version": version,
        "movements": 6,
        "flagged": 5,  # every movement from 500 USD up
        "blocked": 0,
        "live_flagged": 2,
        "live_blocked": 0,
        "live_unscored": 0,
        "newly_caught": 3,  # 600, 700, 550
        "no_longer_caught": 0,
        "confirmed_fraud": 1,
        "confirmed_fraud_caught": 1,
        "cleared": 1,
        "cleared_still_caught": 1,
    }
    rules = {
        r.rule_id: (r.hits, r.live_hits, r.confirmed_fraud_hits, r.cleared_hits)
        for r in reply.rules
    }
    # Velocity replays the stored hour counts: each user's third movement was the third.
    assert rules == {
        "large_amount": (5, 2, 1, 1),
        "velocity": (2, 0, 1, 0),
        "new_account": (0, 2, 0, 0),
    }
    assert [r.rule_id for r in reply.rules][:2] == ["large_amount", "velocity"]


def test_the_live_version_replayed_matches_what_it_decided(history: History) -> None:
    reply = backtest(history, 1, *window())
    assert (reply.flagged, reply.live_flagged, reply.newly_caught, reply.no_longer_caught) == (
        2,
        2,
        0,
        0,
    )


def test_the_range_is_half_open_and_bounded(history: History) -> None:
    version = create_draft(history)
    since, _ = window()
    expect_error(
        lambda: backtest(history, version, since, since),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_time",
    )
    expect_error(
        lambda: backtest(history, version, *window(days=7.01)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "backtest_range_too_long",
    )
    assert backtest(history, version, *window(days=6.99)).movements == 6
    history.wallet.server.service.backtest_max_movements = 5
    error = expect_error(
        lambda: backtest(history, version, *window()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "backtest_range_too_large",
    )
    assert "at most 5 movements" in (error.details() or "")
    history.wallet.server.service.backtest_max_movements = 6
    assert backtest(history, version, *window()).movements == 6


def test_an_unknown_version_is_not_found_and_users_are_refused(history: History) -> None:
    expect_error(
        lambda: backtest(history, 99, *window()),
        grpc.StatusCode.NOT_FOUND,
        "rule_set_not_found",
    )
    _, user = new_user(history.stub)
    since, until = window()
    expect_error(
        lambda: history.stub.BacktestRuleSet(
            pb.BacktestRuleSetRequest(version=1, since=since, until=until), metadata=user
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "admin_required",
    )
