"""The storage contract of the wallet: what the use cases need from storage, without SQL.

The use cases (service.py, group_commit.py) import `WalletStore` and `MovementResult`
from here and nothing from `wallet_service.store`, the SQLAlchemy implementation
(`SqlStore`), which is wired in only by `wallet_service.server`. The records exchanged
(`User`, `Transaction`, `MovementPlan`, ...) are the plain ones of `wallet_service.models`.

Conventions every method follows unless its docstring says otherwise:
- Reads take no lock. On SQLite a read runs in a read transaction; on PostgreSQL in
  autocommit, so each statement sees its own snapshot (a read of several statements is
  not one snapshot).
- A write is one database transaction, retried whole on transient conflicts (PostgreSQL
  deadlock or serialization failure, SQLite busy); it commits at most once. On SQLite it
  holds the database write lock (BEGIN IMMEDIATE) from its start until commit; on
  PostgreSQL it holds the row locks it names, until commit.
- A write that returns the changed record reads it back after its commit, in a separate
  read: a concurrent change committed in between may show.
- A database that cannot be reached is Unavailable(storage_unavailable), nothing written
  (or, for a lost commit, written once: retrying with the same idempotency key is safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from wallet_service.errors import WalletError
from wallet_service.events import OutboxEntry, OutboxStatus, Settlement
from wallet_service.models import (
    MovementFeatures,
    MovementOutcome,
    MovementPlan,
    ReviewStatus,
    Role,
    ScoredTransaction,
    ServiceAccount,
    Transaction,
    TransactionQuery,
    User,
)

# Per plan of `apply_movements`: the outcome, or the refusal (returned, not raised, so one
# refused movement of a group commit does not fail the others).
MovementResult = MovementOutcome | WalletError


class WalletStore(Protocol):
    """What the domain needs from storage (see the module docstring for the conventions)."""

    # -- users and identity ------------------------------------------------------------

    def create_user(
        self,
        *,
        user_id: str,
        username: str,
        password_hash: str,
        role: Role,
        now: datetime,
        email: str | None = None,
    ) -> User:
        """Insert a user (with their own notification address, if given). One write; on
        PostgreSQL it locks the new row (and its unique-index entry, so a concurrent insert of
        the same name waits) until commit. AlreadyExists
        (username_taken) if the name is used in any case or compatibility form, even by a
        deleted user, so a name can never be taken over."""

    def ensure_admin(
        self, *, user_id: str, username: str, password_hash: str, now: datetime
    ) -> User:
        """Insert this admin unless someone holds the name (any form); return whoever holds
        it, deleted or not, unchanged. Two transactions: one INSERT ... ON CONFLICT DO
        NOTHING (safe when replicas run it at the same moment), then a read."""

    def get_user(self, user_id: str) -> User | None:
        """The user by id, deleted or not; None if no such id. No lock."""

    def get_user_by_username(self, username: str) -> User | None:
        """The live (not deleted) user of that name in any case or compatibility form
        (compared canonically, wallet_service.identity); None otherwise. No lock."""

    def change_password(
        self, *, user_id: str, password_hash: str, expected_version: int
    ) -> int | None:
        """Set the hash and bump the credentials version, only if the live user is still at
        `expected_version`: one UPDATE, the user's row locked until commit. The new version,
        or None when nothing matched (the version moved on, or the user is deleted or
        unknown)."""

    def revoke_tokens(self, *, user_id: str) -> int:
        """Bump the credentials version (every token issued before dies): one UPDATE, the
        user's row locked until commit. The new version; NotFound(user_not_found) for a
        deleted or unknown user."""

    def set_role(self, *, user_id: str, role: Role) -> User:
        """Change the role and bump the credentials version in one UPDATE (the user's row
        locked until commit), then read the user back. NotFound(user_not_found) for a
        deleted or unknown user."""

    def reset_admin(self, *, user_id: str, password_hash: str) -> User:
        """Re-key an admin (new hash, undeleted) and bump its credentials version in one
        UPDATE (the row locked until commit), then read it back. A user who is not an admin
        matches nothing and is returned unchanged; `user_id` must exist."""

    def soft_delete_user(self, *, user_id: str, now: datetime, require_zero_balances: bool) -> User:
        """Mark deleted, then read the user back. One write that updates the user's row
        first (its lock, held until commit, makes a concurrent credit, which share-locks it,
        finish before the balance check or fail after). With `require_zero_balances`,
        FailedPrecondition(balance_not_zero) while any balance is not zero, nothing written.
        NotFound(user_not_found) if no live user has that id."""

    def freeze_user(self, *, user_id: str, frozen_by: str, reason: str, now: datetime) -> User:
        """Freeze a live user (who, when, why) in one write (the user's row locked until
        commit), then read it back; a frozen user stays as first frozen.
        NotFound(user_not_found) if no live user has that id."""

    def unfreeze_user(self, *, user_id: str) -> User:
        """Clear the freeze of a live user (no-op if not frozen) in one write (the user's
        row locked until commit), then read it back. NotFound(user_not_found) if no live
        user has that id."""

    def set_user_email(self, *, user_id: str, email: str | None) -> User:
        """Set (None: clear) a live user's notification address in one write (the user's
        row locked until commit), then read it back. NotFound(user_not_found) if no live
        user has that id."""

    # -- balances and the movement path ------------------------------------------------

    def balance(self, *, user_id: str, currency: str) -> int:
        """Balance in minor units, one statement, no lock; 0 when the user never held that
        currency (or does not exist)."""

    def balances(self, *, user_id: str) -> list[tuple[str, int]]:
        """(currency, minor units) for each currency the user holds, sorted by code; one
        statement, no lock; [] when none."""

    def find_by_idempotency_key(self, *, initiated_by: str, key: str) -> Transaction | None:
        """The transaction the caller recorded under `key`; None if none. No lock."""

    def find_by_idempotency_keys(
        self, *, initiated_by: str, keys: Sequence[str]
    ) -> dict[str, Transaction]:
        """The caller's transactions recorded under any of `keys`, by key ({} when none).
        One statement, no lock."""

    def sender_turn(self, user_id: str) -> AbstractContextManager[None]:
        """Hold this user's turn to score and commit one movement, until the context exits:
        while held, no other movement of the user, in this process or another sharing the
        database, is between its feature read and its commit. No database transaction and
        no row lock (PostgreSQL: a session-level advisory lock on a pooled connection;
        see wallet_service.store.sender_turns). Unavailable(sender_busy) if the turn is not
        free within the wait limit."""

    def movement_features(
        self,
        *,
        user_id: str,
        currency: str,
        debit_user_id: str | None,
        now: datetime,
        counterparty_user_id: str | None = None,
    ) -> MovementFeatures:
        """Counts and sums of the user's completed movements in `currency` over the last
        hour and day (over a bounded window of the newest, far above what any rule looks
        at), the same of those among them that are transfers to `counterparty_user_id`
        (0 when None), the user's age and the balance of `debit_user_id` (0 when None or
        no account). Two statements, no lock: call it inside `sender_turn` so the movements
        of the user still in flight have committed. `user_id` must exist."""

    def apply_movements(
        self, plans: Sequence[MovementPlan], *, all_or_nothing: bool = False
    ) -> list[MovementResult]:
        """Apply the (non-empty) `plans` in one database transaction (group commit), each
        on its own terms: debit (never below zero for a user account), credit, transaction
        row and two ledger entries; a blocked plan (`plan.rejected`) records a rejected row
        and moves nothing. Results come in the order of `plans`: per plan its outcome (a
        replay of the stored one when the caller's idempotency key was used before with the
        same request) or the WalletError that refused it and wrote nothing for it:
        AlreadyExists(idempotency_key_reused), FailedPrecondition(insufficient_funds |
        already_reversed | account_frozen | balance_limit_exceeded),
        NotFound(recipient_not_found); each decided by `ledger.decide_movement`.
        Locks, until commit: the live users debited or credited (share, in id order) and
        the accounts touched (update, in id order, created first when missing). A conflict
        with another writer (a unique idempotency key or reversal committed meanwhile, a
        deadlock) reruns the whole transaction a bounded number of times.
        `all_or_nothing` (bulk ATOMIC): when any plan is refused, nothing at all is
        written and the transaction is rolled back; the results still name each refusal."""

    # -- transactions --------------------------------------------------------------------

    def get_transaction(self, tx_id: str) -> Transaction | None:
        """The transaction by id, deleted or not; None if there is none. No lock."""

    def list_transactions(self, query: TransactionQuery) -> list[Transaction]:
        """Newest first, at most `query.limit` rows; [] when none match. No lock."""

    def scored_transactions(
        self, *, since: datetime, until: datetime, limit: int
    ) -> list[ScoredTransaction]:
        """Movements created in [since, until) that were scored with stored features
        (every status, deleted or not), oldest first, at most `limit`; [] when none.
        No lock."""

    def review_transaction(
        self,
        *,
        tx_id: str,
        resolution: ReviewStatus,
        reviewer_id: str,
        note: str,
        now: datetime,
        freeze_reason: str | None = None,
    ) -> Transaction:
        """Resolve a pending flagged transaction in one write (its row locked until commit),
        then read it back. NotFound(transaction_not_found) if absent or not flagged;
        FailedPrecondition(already_reviewed) if it was resolved before. With
        `freeze_reason`, the transaction's initiator is frozen in the same write (that
        user's row locked too; an earlier freeze record is kept)."""

    def soft_delete_transaction(self, *, tx_id: str, now: datetime) -> Transaction:
        """Hide from the owners' listings (idempotent: the first deletion time is kept) in
        one write (the row locked until commit), then read it back; balances never change.
        NotFound(transaction_not_found) if there is none."""

    # -- audit ---------------------------------------------------------------------------

    def ledger_violations(self) -> list[str]:
        """Every broken ledger invariant, described; [] when the books are sound. No lock;
        each check is one statement, consistent on its own (on PostgreSQL two checks may
        see different moments, so run it on a quiet ledger). Callers use
        `ledger.verify_ledger`."""

    # -- the event outbox ----------------------------------------------------------------
    # The writes above store their events (wallet_service.events) in their own transaction.

    def claim_events(
        self, *, owner: str, now: datetime, lease_seconds: float, limit: int
    ) -> list[OutboxEntry]:
        """Lease up to `limit` due pending events (their lease free or expired) to `owner`
        until `now + lease_seconds`, counting an attempt on each; oldest due first; [] when
        none. One write; PostgreSQL: the rows are selected FOR UPDATE SKIP LOCKED (a
        concurrent claimer skips them, never waits) and locked until commit; SQLite: the
        write lock makes the claim a single claimer's, and each row is taken by an UPDATE
        conditional on its lease still being free."""

    def settle_event(
        self,
        *,
        event_id: str,
        owner: str,
        delivered_to: frozenset[str],
        status: OutboxStatus,
        next_attempt_at: datetime | None,
        error: str | None,
        now: datetime,
    ) -> bool:
        """Record an attempt's outcome and release the lease: `status` (SENT, DEAD, or
        PENDING again due at `next_attempt_at`), the destinations that took it so far, the
        last error. One UPDATE (the row locked until commit); False, nothing written, when
        `owner` no longer holds the event (its lease expired and another worker took it).
        `settle_events` for one event."""

    def settle_events(
        self, *, owner: str, settlements: Sequence[Settlement], now: datetime
    ) -> set[str]:
        """Record the outcomes of a round of deliveries (see `settle_event`) in ONE write
        transaction: one UPDATE per distinct outcome (every event that went through to the
        same destinations shares one). Returns the ids settled; an event `owner` no longer
        holds is left untouched and not returned."""

    def retry_dead_event(self, *, event_id: str, now: datetime) -> bool:
        """Put a dead event back to pending, due `now`, its attempts reset. One UPDATE;
        False when no dead event has that id."""

    def outbox_counts(self) -> dict[OutboxStatus, int]:
        """How many events are in each status (every status present, 0 when none). One
        statement, no lock."""

    def list_outbox(
        self, *, status: OutboxStatus | None, limit: int, after_id: str | None = None
    ) -> list[OutboxEntry]:
        """Up to `limit` events in `status` (None: any), oldest first (by id, which is
        time-ordered), after the event `after_id` when given (the next page); [] when none.
        No lock."""

    def get_outbox_event(self, event_id: str) -> OutboxEntry | None:
        """The event with that id, in whatever status; None when there is none. No lock."""

    # -- service accounts ----------------------------------------------------------------

    def create_service_account(self, account: ServiceAccount) -> ServiceAccount:
        """Insert it (one write) and read it back. AlreadyExists(service_account_exists)
        when the name is taken."""

    def get_service_account(self, account_id: str) -> ServiceAccount | None:
        """The account by id, disabled or not; None if no such id. No lock."""

    def list_service_accounts(self) -> list[ServiceAccount]:
        """Every account, disabled ones too, by name. No lock."""

    def rotate_service_account_secret(
        self, *, account_id: str, secret_hash: str, previous_valid_until: datetime
    ) -> ServiceAccount:
        """Make `secret_hash` current and the current one previous, valid until
        `previous_valid_until`, in one UPDATE (the row locked until commit); read it back.
        NotFound(service_account_not_found) unless an enabled account has that id."""

    def disable_service_account(
        self, *, account_id: str, disabled_by: str, now: datetime
    ) -> ServiceAccount:
        """Disable and bump the credentials version (every token dies) in one UPDATE; read
        it back. NotFound(service_account_not_found) unless an enabled account has that id."""
