"""Double-entry ledger rules.

Invariants this service keeps, each enforced in code and, where the database can,
by a constraint:
1. The entries of a completed transaction sum to zero (one debit, one credit, same
   amount); a rejected transaction has no entries.            -> `decide_movement`
2. No entry is zero; no transaction amount is zero or negative.
                                  -> ck_ledger_entries_nonzero, ck_transactions_positive_amount
3. A user account never goes below zero (`decide_movement`), under any concurrency:
   balances are read and changed under locks (`SqlStore.apply_movements`: FOR UPDATE in
   account-id order on PostgreSQL, BEGIN IMMEDIATE on SQLite). -> ck_accounts_no_overdraft
4. An account's balance equals the sum of its entries: both are written in the same
   database transaction.
5. Per currency, all balances (the external account included) sum to zero: money
   only enters and leaves through the currency's external account.
6. Money is undone only by a `reversal` transaction pointing at the original, at most
   once per original (uq_transactions_single_reversal); deletion never moves money.
7. No balance leaves the signed 64-bit range of its BIGINT column: a movement that would
   take one there is refused (`decide_movement`, balance_limit_exceeded).

`verify_ledger` checks 1-5 over the whole database; tests and tools call it.
`decide_movement` is the one money decision (replay, already reversed, frozen parties,
live recipient, funds, range, the two entries): a pure function of the plan and what the
store read under its locks, so a property test can hammer it without a database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wallet_service.errors import AlreadyExists, FailedPrecondition, NotFound, WalletError
from wallet_service.models import (
    MovementOutcome,
    MovementPlan,
    ReviewStatus,
    Transaction,
    TxStatus,
    TxType,
)


class LedgerReader(Protocol):
    """The part of the store that `verify_ledger` needs (kept tiny on purpose)."""

    def ledger_violations(self) -> list[str]: ...


def verify_ledger(store: LedgerReader) -> list[str]:
    """Return every violated invariant as a sentence; an empty list means sound books."""
    return store.ledger_violations()


def request_fingerprint(
    *, tx_type: TxType, currency: str, amount_minor: int, counterparty: str | None
) -> str:
    """Identifies what a request asks for, so a reused idempotency key can be told apart."""
    canonical = f"{tx_type.value}|{currency}|{amount_minor}|{counterparty or ''}"
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay_outcome(existing: Transaction, fingerprint: str | None) -> MovementOutcome:
    """The stored outcome of an earlier call with the same key, or the reuse error."""
    if existing.request_fingerprint != fingerprint:
        raise AlreadyExists(
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request",
        )
    return MovementOutcome(
        transaction=existing,
        balance_after_minor=existing.initiator_balance_after_minor or 0,
        replayed=True,
    )


# -- the money decision ------------------------------------------------------------------------

# Balances and entries are BIGINT: a new balance outside this range would overflow the column.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class LockedAccount:
    """An account as the store read it under its row lock, with the batch's earlier
    movements already applied."""

    id: int
    is_user: bool
    balance: int


@dataclass(frozen=True)
class MovementFacts:
    """What the store read, under locks, that the decision about one plan depends on."""

    # The transaction already recorded under the plan's (caller, idempotency key), if any.
    prior: Transaction | None
    # The original the plan reverses has been reversed already.
    already_reversed: bool
    debit: LockedAccount | None  # None: the debit account does not exist (no balance)
    credit: LockedAccount | None
    # The account whose balance the caller is told about (`plan.report_balance_of`).
    reported: LockedAccount | None
    live_users: frozenset[str]  # the live (not deleted) users among the plan's parties
    frozen_users: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LedgerEntry:
    account_id: int
    amount_minor: int


@dataclass(frozen=True)
class MovementDecision:
    """An accepted plan: the outcome to answer and what to write. A replay writes nothing
    (`record` False, no entries, no balances)."""

    outcome: MovementOutcome
    record: bool
    entries: tuple[LedgerEntry, ...] = ()
    new_balances: Mapping[int, int] = field(default_factory=dict)  # account id -> balance

    @property
    def transaction(self) -> Transaction:
        return self.outcome.transaction


def decide_movement(plan: MovementPlan, facts: MovementFacts) -> MovementDecision | WalletError:
    """THE money decision, pure: no I/O, no clock. Checks in this order: an idempotent
    replay answers first (before any other check, so a retry never sees a refusal its own
    success caused); then already reversed, frozen parties, a blocked plan (recorded as
    rejected, moves nothing), a live recipient, enough funds, the 64-bit range of both new
    balances; then the two entries. A refusal is returned, never raised."""
    if facts.prior is not None:
        try:
            return MovementDecision(replay_outcome(facts.prior, plan.request_fingerprint), False)
        except AlreadyExists as reused:
            return reused
    refusal = _refusal(plan, facts)
    if refusal is not None:
        return refusal
    if plan.rejected:
        return _decided(plan, facts, TxStatus.REJECTED, {})
    debit, credit = facts.debit, facts.credit
    assert debit is not None and credit is not None  # _refusal checked both
    new_balances = {
        debit.id: debit.balance - plan.amount_minor,
        credit.id: credit.balance + plan.amount_minor,
    }
    entries = (
        LedgerEntry(debit.id, -plan.amount_minor),
        LedgerEntry(credit.id, plan.amount_minor),
    )
    return _decided(plan, facts, TxStatus.COMPLETED, new_balances, entries)


def _refusal(plan: MovementPlan, facts: MovementFacts) -> WalletError | None:
    if facts.already_reversed:
        return FailedPrecondition("already_reversed", "Transaction was already reversed")
    if _frozen_party(plan, facts):
        return FailedPrecondition(
            "account_frozen", "The account is frozen: it can neither send nor receive money"
        )
    if plan.rejected:
        return None  # a blocked plan is recorded as rejected whatever the balances
    if plan.credit_user_id and plan.credit_user_id not in facts.live_users:
        return NotFound("recipient_not_found", "Recipient not found")
    debit, credit = facts.debit, facts.credit
    if debit is None or (debit.is_user and debit.balance < plan.amount_minor):
        detail = f"no {plan.currency} balance" if debit is None else f"not enough {plan.currency}"
        return FailedPrecondition("insufficient_funds", f"Insufficient funds: {detail}")
    if credit is None:
        raise AssertionError("the store creates the credit account of every moving plan")
    if debit.balance - plan.amount_minor < INT64_MIN or (
        credit.balance + plan.amount_minor > INT64_MAX
    ):
        return FailedPrecondition(
            "balance_limit_exceeded",
            f"The movement would take a {plan.currency} balance beyond the largest amount "
            "this ledger can hold; nothing was moved",
        )
    return None


def _frozen_party(plan: MovementPlan, facts: MovementFacts) -> bool:
    """A frozen user neither sends nor receives. An admin's reversal is exempt: it is how
    money is clawed back from (or returned to) a frozen account."""
    if plan.type is TxType.REVERSAL:
        return False
    parties = {plan.debit_user_id, plan.credit_user_id} - {None}
    return not parties.isdisjoint(facts.frozen_users)


def _decided(
    plan: MovementPlan,
    facts: MovementFacts,
    status: TxStatus,
    new_balances: dict[int, int],
    entries: tuple[LedgerEntry, ...] = (),
) -> MovementDecision:
    reported = facts.reported
    balance = 0
    if reported is not None and plan.report_balance_of:
        balance = new_balances.get(reported.id, reported.balance)
    tx = planned_transaction(
        plan,
        status,
        balance,
        from_known=facts.debit is not None,
        to_known=facts.credit is not None,
    )
    outcome = MovementOutcome(transaction=tx, balance_after_minor=balance, replayed=False)
    return MovementDecision(outcome, True, entries, new_balances)


def planned_transaction(
    plan: MovementPlan, status: TxStatus, balance: int, *, from_known: bool, to_known: bool
) -> Transaction:
    """The transaction row a decided plan records."""
    flagged = plan.verdict is not None and plan.verdict.flagged
    return Transaction(
        id=plan.tx_id,
        type=plan.type,
        status=status,
        currency=plan.currency,
        amount_minor=plan.amount_minor,
        from_user_id=plan.debit_user_id if from_known else None,
        from_username=plan.debit_username if from_known else None,
        to_user_id=plan.credit_user_id if to_known else None,
        to_username=plan.credit_username if to_known else None,
        initiated_by=plan.initiated_by,
        idempotency_key=plan.idempotency_key,
        request_fingerprint=plan.request_fingerprint,
        created_at=plan.created_at,
        deleted_at=None,
        verdict=plan.verdict,
        flagged=flagged,
        review_status=ReviewStatus.PENDING if flagged else None,
        reviewed_by=None,
        reviewed_at=None,
        review_note=None,
        reverses_transaction_id=plan.reverses_transaction_id,
        reversed_by_transaction_id=None,
        initiator_balance_after_minor=balance,
        note=plan.note,
        initiated_by_service=plan.initiated_by_service,
    )
