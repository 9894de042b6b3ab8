"""Double-entry ledger rules.

Invariants this service keeps, each enforced in code and, where the database can,
by a constraint:
1. The entries of a completed transaction sum to zero (one debit, one credit, same
   amount); a rejected transaction has no entries.            -> `store._Batch._apply`
2. No entry is zero; no transaction amount is zero or negative.
                                  -> ck_ledger_entries_nonzero, ck_transactions_positive_amount
3. A user account never goes below zero, under any concurrency: balances are read
   and changed under locks (`SqlStore.apply_movements`: FOR UPDATE in account-id order
   on PostgreSQL, BEGIN IMMEDIATE on SQLite).                 -> ck_accounts_no_overdraft
4. An account's balance equals the sum of its entries: both are written in the same
   database transaction.
5. Per currency, all balances (the external account included) sum to zero: money
   only enters and leaves through the currency's external account.
6. Money is undone only by a `reversal` transaction pointing at the original, at most
   once per original (uq_transactions_single_reversal); deletion never moves money.

`verify_ledger` checks 1-5 over the whole database; tests and tools call it.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from wallet_service.errors import AlreadyExists
from wallet_service.models import MovementOutcome, Transaction, TxType


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
