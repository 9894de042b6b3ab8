"""Rules as data through the wallet (gRPC), on both wallet stores: only admins reach
fraud.v1.FraudAdmin; an activated draft decides the next movement, citing its version,
with nothing restarted; a block-listed user's next transfer is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fraud.v1 import fraud_pb2, fraud_pb2_grpc
from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc

from fraud_service.server import FraudServer, create_server
from fraud_service.settings import FraudSettings
from tests.support import (
    CreateDatabase,
    RunningWallet,
    admin_auth,
    count_rows,
    database_url,
    expect_error,
    new_user,
    seen_by_admin,
    start_wallet,
    wallet_settings,
)
from wallet_service.schema import ledger_entries

Auth = tuple[tuple[str, str], ...]


class Setup:
    def __init__(self, fraud: FraudServer, wallet: RunningWallet) -> None:
        self.fraud = fraud
        self.wallet = wallet
        self.channel = grpc.insecure_channel(wallet.addr)
        self.stub = wallet_pb2_grpc.WalletServiceStub(self.channel)
        # FraudAdmin on the wallet's port: the wallet forwards it.
        self.admin = fraud_pb2_grpc.FraudAdminStub(self.channel)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def setup(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database_factory: CreateDatabase
) -> Iterator[Setup]:
    """A fraud service of its own (its activations must not reach other tests) and a wallet."""
    fraud = create_server(
        FraudSettings(addr="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'fraud.db'}")
    )
    fraud.start()
    url = database_url(request.param, tmp_path, pg_database_factory)
    wallet = start_wallet(wallet_settings(url, f"127.0.0.1:{fraud.port}"), request.param)
    built = Setup(fraud, wallet)
    yield built
    built.channel.close()
    wallet.server.stop(0)
    fraud.stop(None)


def list_sets(setup: Setup, auth: Auth) -> list[fraud_pb2.RuleSet]:
    return list(setup.admin.ListRuleSets(fraud_pb2.ListRuleSetsRequest(), metadata=auth).rule_sets)


def test_only_admins_reach_fraud_admin_through_the_wallet(setup: Setup) -> None:
    _, user = new_user(setup.stub)
    draft = fraud_pb2.CreateRuleSetRequest(rules=[fraud_pb2.Rule(kind="large_amount")])
    expect_error(
        lambda: setup.admin.CreateRuleSet(draft, metadata=user),
        grpc.StatusCode.PERMISSION_DENIED,
        "admin_required",
    )
    expect_error(
        lambda: setup.admin.ListRuleSets(fraud_pb2.ListRuleSetsRequest()),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_missing",
    )
    assert [s.version for s in list_sets(setup, admin_auth(setup.stub))] == [1]


def test_a_bad_rule_set_is_refused_with_the_fraud_services_reason(setup: Setup) -> None:
    bad = fraud_pb2.CreateRuleSetRequest(
        rules=[fraud_pb2.Rule(kind="large_amount", params={"threshold": "-5"})]
    )
    error = expect_error(
        lambda: setup.admin.CreateRuleSet(bad, metadata=admin_auth(setup.stub)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_rule_set",
    )
    assert "rules[0].params.threshold" in (error.details() or "")


def test_an_activated_draft_flags_the_next_deposit_citing_its_version(setup: Setup) -> None:
    auth = admin_auth(setup.stub)
    _, user = new_user(setup.stub)
    before = setup.stub.Deposit(pb.DepositRequest(amount="600.00", currency="USD"), metadata=user)
    assert not before.transaction.flagged
    assert seen_by_admin(setup.stub, before.transaction.id).fraud_rules_version == "1"
    draft = setup.admin.CreateRuleSet(
        fraud_pb2.CreateRuleSetRequest(
            description="large amounts from 500 USD",
            rules=[fraud_pb2.Rule(kind="large_amount", params={"threshold": "500"})],
        ),
        metadata=auth,
    )
    live = setup.admin.ActivateRuleSet(
        fraud_pb2.ActivateRuleSetRequest(version=draft.version), metadata=auth
    )
    assert (live.version, live.status, live.activated_by) == (2, "live", "root_admin")
    after = setup.stub.Deposit(pb.DepositRequest(amount="600.00", currency="USD"), metadata=user)
    assert after.transaction.flagged
    tx = seen_by_admin(setup.stub, after.transaction.id)
    assert tx.fraud_rules_version == "2"
    assert [r.rule_id for r in tx.fraud_reasons] == ["large_amount"]
    assert "500 USD threshold" in tx.fraud_reasons[0].description


def test_a_block_listed_user_is_refused_as_sender_and_as_recipient(setup: Setup) -> None:
    auth = admin_auth(setup.stub)
    mallory, mallory_auth = new_user(setup.stub)
    bob, bob_auth = new_user(setup.stub)
    for user_auth in (mallory_auth, bob_auth):
        setup.stub.Deposit(pb.DepositRequest(amount="50.00", currency="USD"), metadata=user_auth)
    setup.admin.AddListEntry(
        fraud_pb2.AddListEntryRequest(list="block", username=mallory.upper(), note="mules"),
        metadata=auth,
    )
    entries_before = count_rows(setup.wallet, ledger_entries)
    for sender_auth, to in ((mallory_auth, bob), (bob_auth, mallory)):
        expect_error(
            lambda a=sender_auth, t=to: setup.stub.Transfer(  # type: ignore[misc]
                pb.TransferRequest(to_username=t, amount="1.00", currency="USD"), metadata=a
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "transaction_blocked",
        )
    assert count_rows(setup.wallet, ledger_entries) == entries_before
    history = setup.stub.ListTransactions(pb.ListTransactionsRequest(), metadata=mallory_auth)
    rejected = seen_by_admin(setup.stub, history.transactions[0].id)
    assert rejected.status == "rejected"
    assert [r.rule_id for r in rejected.fraud_reasons] == ["block_list"]
    setup.admin.RemoveListEntry(
        fraud_pb2.RemoveListEntryRequest(list="block", username=mallory), metadata=auth
    )
    reply = setup.stub.Transfer(
        pb.TransferRequest(to_username=bob, amount="1.00", currency="USD"), metadata=mallory_auth
    )
    assert reply.transaction.status == "completed"


def test_a_cleared_review_with_snooze_days_snoozes_the_rules_that_hit(setup: Setup) -> None:
    auth = admin_auth(setup.stub)
    name, user = new_user(setup.stub)
    deposit = pb.DepositRequest(amount="10000.00", currency="USD")
    first = setup.stub.Deposit(deposit, metadata=user)
    assert first.transaction.flagged
    expect_error(
        lambda: setup.stub.ReviewTransaction(
            pb.ReviewTransactionRequest(
                transaction_id=first.transaction.id, resolution="confirmed_fraud", snooze_days=7
            ),
            metadata=auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "snooze_requires_cleared",
    )
    assert setup.admin.ListSnoozes(fraud_pb2.ListSnoozesRequest(), metadata=auth).snoozes == []
    reviewed = setup.stub.ReviewTransaction(
        pb.ReviewTransactionRequest(
            transaction_id=first.transaction.id, resolution="cleared", snooze_days=7
        ),
        metadata=auth,
    )
    assert reviewed.review_status == "cleared"
    snoozes = setup.admin.ListSnoozes(fraud_pb2.ListSnoozesRequest(username=name), metadata=auth)
    assert sorted(s.rule_id for s in snoozes.snoozes) == ["large_amount", "new_account"]
    assert {s.created_by for s in snoozes.snoozes} == {"root_admin"}
    assert not setup.stub.Deposit(deposit, metadata=user).transaction.flagged
    _, stranger = new_user(setup.stub)
    assert setup.stub.Deposit(deposit, metadata=stranger).transaction.flagged


def test_a_block_list_refusal_cannot_be_snoozed(setup: Setup) -> None:
    auth = admin_auth(setup.stub)
    name, user = new_user(setup.stub)
    setup.admin.AddListEntry(
        fraud_pb2.AddListEntryRequest(list="block", username=name), metadata=auth
    )
    expect_error(
        lambda: setup.stub.Deposit(pb.DepositRequest(amount="5.00", currency="USD"), metadata=user),
        grpc.StatusCode.FAILED_PRECONDITION,
        "transaction_blocked",
    )
    rejected = setup.stub.ListTransactions(pb.ListTransactionsRequest(), metadata=user)
    expect_error(
        lambda: setup.stub.ReviewTransaction(
            pb.ReviewTransactionRequest(
                transaction_id=rejected.transactions[0].id, resolution="cleared", snooze_days=7
            ),
            metadata=auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "nothing_to_snooze",
    )
    assert seen_by_admin(setup.stub, rejected.transactions[0].id).review_status == "pending"
