"""The movement write path: one group-commit transaction locks and reads what its plans
need, asks the pure `ledger.decide_movement` about each plan, and writes in bulk.
No money rule lives here. Contract: WalletStore.apply_movements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from wallet_service.errors import WalletError
from wallet_service.events import Event, movement_events
from wallet_service.ledger import (
    LockedAccount,
    MovementDecision,
    MovementFacts,
    decide_movement,
)
from wallet_service.models import MovementPlan, Transaction
from wallet_service.schema import accounts, transactions
from wallet_service.store.db import MAX_WRITE_ATTEMPTS, Db
from wallet_service.store.outbox import add_events
from wallet_service.store.rows import transaction_from_row, transaction_row
from wallet_service.store.statements import (
    INSERT_ENTRIES,
    INSERT_TRANSACTIONS,
    LOCK_ACCOUNTS,
    LOCK_LIVE_USERS,
    PRIOR_BY_KEYS,
    SET_BALANCE,
)
from wallet_service.store_contract import MovementResult

AccountKey = tuple[str | None, str]  # (owner user id, or None for external; currency)


class MovementWrites:
    """The movement write path, over the store's `Db`."""

    _db: Db

    def apply_movements(
        self, plans: Sequence[MovementPlan], *, all_or_nothing: bool = False
    ) -> list[MovementResult]:
        """Apply `plans` in ONE database transaction (group commit: one lock round, one
        commit, one fsync for all). Each movement still stands alone: one that is refused
        (insufficient funds, deleted recipient, reused key, already reversed) writes nothing
        and does not disturb the others. Results come back in the order of `plans`.
        `all_or_nothing`: if any plan is refused, the transaction is rolled back and
        nothing at all is written (the results still say what each plan met)."""
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            try:
                return self._db.write(
                    lambda conn: _Batch(self._db, conn, plans).run(all_or_nothing)
                )
            except _RolledBack as undone:
                return undone.results
            except IntegrityError:
                # Another writer (another replica) committed one of our idempotency keys or
                # reversals between our check and our insert; the rerun will see it.
                if attempt == MAX_WRITE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")


class _RolledBack(Exception):
    """An all-or-nothing batch met a refusal: raised inside the transaction to roll it back."""

    def __init__(self, results: list[MovementResult]) -> None:
        super().__init__("all-or-nothing batch refused")
        self.results = results


class _Batch:
    """One group-commit transaction: reads and locks what the plans need, asks the pure
    `ledger.decide_movement` about each plan against the locked balances (earlier plans of
    the batch applied), then writes everything in bulk."""

    def __init__(self, db: Db, conn: Connection, plans: Sequence[MovementPlan]) -> None:
        self.db, self.conn, self.plans = db, conn, plans
        self.tx_rows: list[dict[str, Any]] = []
        self.entry_rows: list[dict[str, Any]] = []
        self.events: list[Event] = []
        self.dirty: set[int] = set()
        self.done_by_key: dict[tuple[str, str], Transaction] = {}

    def run(self, all_or_nothing: bool = False) -> list[MovementResult]:
        now = max(p.created_at for p in self.plans)
        moving = [p for p in self.plans if not p.rejected]
        parties = {p.credit_user_id for p in self.plans} | {p.debit_user_id for p in self.plans}
        self.live, self.frozen = _lock_users(self.conn, parties)
        self.prior, self.reversed_already = _prior_transactions(self.conn, self.plans)
        wanted = {(p.debit_user_id, p.currency) for p in self.plans} | {
            (p.credit_user_id, p.currency) for p in self.plans
        }
        create = {(p.credit_user_id, p.currency) for p in moving} | {
            (None, p.currency) for p in moving if p.debit_user_id is None
        }
        self.accounts = _lock_accounts(self.db, self.conn, wanted, create, now)
        results = [self._decide(plan) for plan in self.plans]
        if all_or_nothing and any(isinstance(r, WalletError) for r in results):
            raise _RolledBack(results)  # before any write; the rollback drops the locks
        self._write()
        return results

    def _decide(self, plan: MovementPlan) -> MovementResult:
        key = (plan.initiated_by, plan.idempotency_key) if plan.idempotency_key else None
        decision = decide_movement(plan, self._facts(plan, key))
        if isinstance(decision, WalletError):
            return decision
        if decision.record:
            self._absorb(plan, decision)
            if key:
                self.done_by_key[key] = decision.transaction
        return decision.outcome

    def _facts(self, plan: MovementPlan, key: tuple[str, str] | None) -> MovementFacts:
        prior = (self.prior.get(key) or self.done_by_key.get(key)) if key else None
        reported = plan.report_balance_of
        return MovementFacts(
            prior=prior,
            already_reversed=plan.reverses_transaction_id in self.reversed_already,
            debit=self.accounts.get((plan.debit_user_id, plan.currency)),
            credit=self.accounts.get((plan.credit_user_id, plan.currency)),
            reported=self.accounts.get((reported, plan.currency)) if reported else None,
            live_users=self.live,
            frozen_users=self.frozen,
        )

    def _absorb(self, plan: MovementPlan, decision: MovementDecision) -> None:
        """Apply a decision to the batch's view of the locked accounts and queue its rows."""
        by_id = {a.id: key for key, a in self.accounts.items()}
        for account_id, balance in decision.new_balances.items():
            key = by_id[account_id]
            self.accounts[key] = replace(self.accounts[key], balance=balance)
            self.dirty.add(account_id)
        self.entry_rows += [
            {
                "transaction_id": plan.tx_id,
                "account_id": e.account_id,
                "amount_minor": e.amount_minor,
            }
            for e in decision.entries
        ]
        debit = self.accounts.get((plan.debit_user_id, plan.currency))
        credit = self.accounts.get((plan.credit_user_id, plan.currency))
        self.tx_rows.append(
            transaction_row(
                decision.transaction,
                debit.id if debit else None,
                credit.id if credit else None,
                plan.features,
            )
        )
        if plan.reverses_transaction_id:
            self.reversed_already.add(plan.reverses_transaction_id)
        # Flagged, blocked, reversed, received: reported by the outbox in this same batch
        # transaction, so an event exists exactly when its movement committed.
        self.events += movement_events(decision.transaction)

    def _write(self) -> None:
        """Final balances (absolute values of rows we hold locked), then the transaction rows
        (a unique-key race raises IntegrityError and the whole batch reruns), then entries, then
        the outbox events."""
        if self.dirty:
            by_id = {a.id: a for a in self.accounts.values()}
            self.conn.execute(
                SET_BALANCE,
                [{"account_id": i, "new_balance": by_id[i].balance} for i in sorted(self.dirty)],
            )
        if self.tx_rows:
            self.conn.execute(INSERT_TRANSACTIONS, self.tx_rows)
        if self.entry_rows:
            self.conn.execute(INSERT_ENTRIES, self.entry_rows)
        add_events(self.conn, self.events)


def _lock_users(
    conn: Connection, user_ids: set[str | None]
) -> tuple[frozenset[str], frozenset[str]]:
    """Share-lock the live users among `user_ids`; returns (live, frozen among them).
    PostgreSQL: a concurrent soft deletion or freeze waits for us (and we for it);
    SQLite is serialised by BEGIN IMMEDIATE anyway."""
    ids = sorted(i for i in user_ids if i)
    if not ids:
        return frozenset(), frozenset()
    rows = conn.execute(LOCK_LIVE_USERS, {"ids": ids}).all()
    live = frozenset(r.id for r in rows)
    return live, frozenset(r.id for r in rows if r.frozen_at is not None)


def _lock_accounts(
    db: Db, conn: Connection, wanted: set[AccountKey], create: set[AccountKey], now: datetime
) -> dict[AccountKey, LockedAccount]:
    """Lock the accounts named by `wanted` in id order (so concurrent batches cannot
    deadlock), creating the ones in `create` that do not exist yet."""
    found = _select_accounts(conn, wanted)
    missing = [key for key in create if key not in found]
    if missing:
        conn.execute(
            db.insert(accounts).on_conflict_do_nothing(),
            [
                {
                    "owner_user_id": owner,
                    "currency": currency,
                    "kind": "user" if owner else "external",
                    "balance_minor": 0,
                    "created_at": now,
                }
                for owner, currency in missing
            ],
        )
        found |= _select_accounts(conn, set(missing))
    return found


def _select_accounts(conn: Connection, keys: set[AccountKey]) -> dict[AccountKey, LockedAccount]:
    owners = {owner for owner, _ in keys if owner}
    currencies = {currency for _, currency in keys}
    external = any(owner is None for owner, _ in keys)
    rows = conn.execute(
        LOCK_ACCOUNTS[external], {"owners": sorted(owners), "currencies": sorted(currencies)}
    ).all()
    return {
        (row.owner_user_id, row.currency): LockedAccount(
            id=int(row.id), is_user=row.kind == "user", balance=int(row.balance_minor)
        )
        for row in rows
    }


def _prior_transactions(
    conn: Connection, plans: Sequence[MovementPlan]
) -> tuple[dict[tuple[str, str], Transaction], set[str]]:
    """Committed transactions under the batch's idempotency keys, and which of the
    originals the batch wants to reverse are reversed already."""
    keys = {(p.initiated_by, p.idempotency_key) for p in plans if p.idempotency_key}
    prior: dict[tuple[str, str], Transaction] = {}
    if keys:
        # One statement of fixed shape for any batch: a superset by the two IN lists,
        # narrowed to the exact (caller, key) pairs here.
        rows = conn.execute(
            PRIOR_BY_KEYS,
            {"callers": sorted({c for c, _ in keys}), "keys": sorted({k for _, k in keys})},
        )
        for row in rows:
            tx = transaction_from_row(row)
            pair = (tx.initiated_by, tx.idempotency_key or "")
            if pair in keys:
                prior[pair] = tx
    originals = sorted({p.reverses_transaction_id for p in plans if p.reverses_transaction_id})
    reversed_already: set[str] = set()
    if originals:
        reversed_already = set(
            conn.execute(
                select(transactions.c.reverses_transaction_id).where(
                    transactions.c.reverses_transaction_id.in_(originals)
                )
            ).scalars()
        )
    return prior, reversed_already
