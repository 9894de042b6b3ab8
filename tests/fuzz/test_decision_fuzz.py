"""Property tests of the pure money decision (`ledger.decide_movement`), without a database.

A tiny in-memory "store" keeps balances and the transactions recorded under idempotency
keys, asks `decide_movement` about random plans (deposits, withdrawals, transfers,
reversals, blocked plans, replays, reused keys, dead or frozen parties, balances near the
64-bit limits) and applies what it answers, as `SqlStore` does. After every step: each
accepted movement's entries sum to zero and match its new balances, no user balance is
negative, every balance fits in int64, refusals change nothing and a replay returns the
original transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wallet_service.errors import AlreadyExists, WalletError
from wallet_service.ledger import (
    INT64_MAX,
    INT64_MIN,
    LockedAccount,
    MovementDecision,
    MovementFacts,
    decide_movement,
    request_fingerprint,
)
from wallet_service.models import (
    Decision,
    FraudVerdict,
    MovementPlan,
    Transaction,
    TxStatus,
    TxType,
)

USERS = ("u0", "u1", "u2")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NEAR_LIMIT = INT64_MAX - 1000

AMOUNTS = st.one_of(
    st.integers(min_value=1, max_value=5_000),
    st.integers(min_value=INT64_MAX - 2_000, max_value=INT64_MAX),  # overflow attempts
)


class Books:
    """What the store holds between decisions: balances, keys, reversals, user states."""

    def __init__(self, start_balances: dict[str | None, int]) -> None:
        self.accounts: dict[str | None, LockedAccount] = {
            owner: LockedAccount(i, owner is not None, balance)
            for i, (owner, balance) in enumerate(start_balances.items())
        }
        self.by_key: dict[str, Transaction] = {}
        self.reversed: set[str] = set()
        self.committed: list[Transaction] = []
        self.dead: set[str] = set()
        self.frozen: set[str] = set()

    def facts(self, plan: MovementPlan) -> MovementFacts:
        reported = self.accounts.get(plan.report_balance_of) if plan.report_balance_of else None
        return MovementFacts(
            prior=self.by_key.get(plan.idempotency_key or "") if plan.idempotency_key else None,
            already_reversed=plan.reverses_transaction_id in self.reversed,
            debit=self.accounts.get(plan.debit_user_id),
            credit=self.accounts.get(plan.credit_user_id),
            reported=reported,
            live_users=frozenset(USERS) - self.dead,
            frozen_users=frozenset(self.frozen),
        )

    def apply(self, plan: MovementPlan, decision: MovementDecision) -> None:
        by_id = {a.id: owner for owner, a in self.accounts.items()}
        for account_id, balance in decision.new_balances.items():
            owner = by_id[account_id]
            self.accounts[owner] = LockedAccount(account_id, owner is not None, balance)
        if decision.record:
            if plan.idempotency_key:
                self.by_key[plan.idempotency_key] = decision.transaction
            if plan.reverses_transaction_id:
                self.reversed.add(plan.reverses_transaction_id)
            self.committed.append(decision.transaction)

    def balances(self) -> dict[str | None, int]:
        return {owner: a.balance for owner, a in self.accounts.items()}


def make_plan(
    kind: TxType,
    amount: int,
    a: str,
    b: str,
    *,
    key: str | None,
    blocked: bool = False,
    reverses: Transaction | None = None,
) -> MovementPlan:
    debit: str | None
    credit: str | None
    if reverses is not None:
        debit, credit = reverses.to_user_id, reverses.from_user_id
        amount = reverses.amount_minor
    else:
        debit = {TxType.DEPOSIT: None, TxType.WITHDRAWAL: a, TxType.TRANSFER: a}[kind]
        credit = {TxType.DEPOSIT: a, TxType.WITHDRAWAL: None, TxType.TRANSFER: b}[kind]
    counterparty = reverses.id if reverses else (b if kind is TxType.TRANSFER else None)
    verdict = FraudVerdict(90, Decision.BLOCK) if blocked else FraudVerdict(0, Decision.ALLOW)
    return MovementPlan(
        tx_id=str(uuid.uuid4()),
        type=TxType.REVERSAL if reverses else kind,
        currency="USD",
        amount_minor=amount,
        debit_user_id=debit,
        credit_user_id=credit,
        debit_username=debit,
        credit_username=credit,
        initiated_by="admin" if reverses else a,
        idempotency_key=key,
        request_fingerprint=request_fingerprint(
            tx_type=TxType.REVERSAL if reverses else kind,
            currency="USD",
            amount_minor=amount,
            counterparty=counterparty,
        ),
        verdict=None if reverses else verdict,
        created_at=NOW,
        reverses_transaction_id=reverses.id if reverses else None,
        report_balance_of=credit if reverses else a,
    )


Step = tuple[TxType, int, str, str, str | None, bool, str]
STEP = st.tuples(
    st.sampled_from([TxType.DEPOSIT, TxType.WITHDRAWAL, TxType.TRANSFER, TxType.REVERSAL]),
    AMOUNTS,
    st.sampled_from(USERS),
    st.sampled_from(USERS),
    st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"])),  # few keys: many replays
    st.booleans(),  # blocked by fraud
    st.sampled_from(["none", "none", "none", "kill", "freeze", "thaw"]),  # user state change
)
START = st.fixed_dictionaries(
    {
        None: st.sampled_from([0, -NEAR_LIMIT, INT64_MIN + 10]),
        "u0": st.sampled_from([0, 100, NEAR_LIMIT]),
        "u1": st.sampled_from([0, 100]),
        "u2": st.just(0),
    }
)


def _consistent(start: dict[str | None, int]) -> dict[str | None, int]:
    """External = -(sum of users), as in real books; clamp so the start is representable."""
    users = sum(v for k, v in start.items() if k is not None)
    return {**start, None: max(INT64_MIN, -users) if start[None] == 0 else start[None]}


@settings(max_examples=300, deadline=None)
@given(START, st.lists(STEP, min_size=1, max_size=40))
def test_decisions_keep_the_books(start: dict[str | None, int], steps: list[Step]) -> None:
    books = Books(_consistent(start))
    for kind, amount, a, b, key, blocked, change in steps:
        if change == "kill":
            books.dead.add(b)
        elif change == "freeze":
            books.frozen.add(a)
        elif change == "thaw":
            books.frozen.discard(a)
        if kind is TxType.TRANSFER and a == b:
            continue  # refused before a plan exists (self_transfer)
        reverses = None
        if kind is TxType.REVERSAL:
            originals = [t for t in books.committed if t.type is not TxType.REVERSAL]
            if not originals:
                continue
            reverses = originals[amount % len(originals)]
            if reverses.status is not TxStatus.COMPLETED:
                continue
        plan = make_plan(kind, amount, a, b, key=key, blocked=blocked, reverses=reverses)
        facts = books.facts(plan)
        before = books.balances()
        decision = decide_movement(plan, facts)
        check_one(plan, facts, decision, before)
        if isinstance(decision, MovementDecision):
            books.apply(plan, decision)
        else:
            assert books.balances() == before
        check_books(books)


def check_one(
    plan: MovementPlan,
    facts: MovementFacts,
    decision: MovementDecision | WalletError,
    before: dict[str | None, int],
) -> None:
    if facts.prior is not None:  # a used key answers first, whatever else changed since
        if facts.prior.request_fingerprint == plan.request_fingerprint:
            assert isinstance(decision, MovementDecision)
            assert decision.outcome.replayed and not decision.record
            assert decision.transaction == facts.prior
            assert not decision.entries and not decision.new_balances
        else:
            assert isinstance(decision, AlreadyExists)
        return
    expected = expected_refusal(plan, facts)
    if isinstance(decision, WalletError):
        assert decision.code == expected
        return  # a refusal carries nothing to write: the caller's books stay as they were
    assert expected is None, f"accepted although {expected}"
    assert decision.record and not decision.outcome.replayed
    assert sum(e.amount_minor for e in decision.entries) == 0
    assert all(e.amount_minor != 0 for e in decision.entries)
    for entry in decision.entries:
        account = next(a for a in (facts.debit, facts.credit) if a and a.id == entry.account_id)
        assert decision.new_balances[entry.account_id] == account.balance + entry.amount_minor
    if plan.rejected:
        assert not decision.entries and not decision.new_balances
    else:
        assert len(decision.entries) == 2
    if plan.type is not TxType.REVERSAL:
        assert not ({plan.debit_user_id, plan.credit_user_id} & facts.frozen_users)


def expected_refusal(plan: MovementPlan, facts: MovementFacts) -> str | None:
    """An independent statement of when a movement must be refused, and why."""
    parties = {plan.debit_user_id, plan.credit_user_id} - {None}
    if facts.already_reversed:
        return "already_reversed"
    if plan.type is not TxType.REVERSAL and parties & facts.frozen_users:
        return "account_frozen"
    if plan.rejected:
        return None
    if plan.credit_user_id is not None and plan.credit_user_id not in facts.live_users:
        return "recipient_not_found"
    debit, credit = facts.debit, facts.credit
    if debit is None or (plan.debit_user_id is not None and debit.balance < plan.amount_minor):
        return "insufficient_funds"
    assert credit is not None
    if debit.balance - plan.amount_minor < INT64_MIN or not (
        credit.balance + plan.amount_minor <= INT64_MAX
    ):
        return "balance_limit_exceeded"
    return None


def check_books(books: Books) -> None:
    balances = books.balances()
    assert all(INT64_MIN <= v <= INT64_MAX for v in balances.values())
    assert all(v >= 0 for owner, v in balances.items() if owner is not None)


def test_a_replay_returns_the_original_even_after_the_recipient_is_gone() -> None:
    books = Books({None: 0, "u0": 500, "u1": 0})
    plan = make_plan(TxType.TRANSFER, 200, "u0", "u1", key="k")
    first = decide_movement(plan, books.facts(plan))
    assert isinstance(first, MovementDecision)
    books.apply(plan, first)
    books.dead.add("u1")
    books.frozen.add("u0")
    retry = make_plan(TxType.TRANSFER, 200, "u0", "u1", key="k")
    again = decide_movement(retry, books.facts(retry))
    assert isinstance(again, MovementDecision)
    assert again.outcome.replayed and again.transaction.id == plan.tx_id
    assert again.outcome.balance_after_minor == 300


def test_a_plan_refuses_zero_amounts_and_self_movements() -> None:
    with pytest.raises(ValueError, match="positive"):
        make_plan(TxType.DEPOSIT, 0, "u0", "u1", key=None)
    with pytest.raises(ValueError, match="different accounts"):
        make_plan(TxType.TRANSFER, 5, "u0", "u0", key=None)
