"""The storage interface of the wallet and its SQLAlchemy Core implementation.

`WalletStore` is the contract the domain relies on; `SqlStore` implements it for
SQLite and PostgreSQL with the same SQL. Every method is one database transaction.
Write methods on SQLite hold the database write lock (BEGIN IMMEDIATE) until they
return; on PostgreSQL they lock only the rows they update, until they return.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    Engine,
    Row,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from wallet_service.database import READ_ONLY_OPTION
from wallet_service.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    Unavailable,
    WalletError,
)
from wallet_service.identity import canonical_username
from wallet_service.ledger import (
    LockedAccount,
    MovementDecision,
    MovementFacts,
    decide_movement,
)
from wallet_service.models import (
    Decision,
    FraudReason,
    FraudVerdict,
    MovementFeatures,
    MovementOutcome,
    MovementPlan,
    ReviewStatus,
    Role,
    Transaction,
    TransactionQuery,
    TxStatus,
    TxType,
    User,
    as_utc,
)
from wallet_service.schema import accounts, ledger_entries, transactions, users
from wallet_service.sender_turns import SenderTurns

T = TypeVar("T")

MAX_WRITE_ATTEMPTS = 8
FEATURE_WINDOW_LIMIT = 200
# PostgreSQL serialization failure and deadlock: safe to retry the whole transaction.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}

AccountKey = tuple[str | None, str]  # (owner user id, or None for external; currency)
MovementResult = MovementOutcome | WalletError


class WalletStore(Protocol):
    """What the domain needs from storage. Every call is one database transaction."""

    def create_user(
        self, *, user_id: str, username: str, password_hash: str, role: Role, now: datetime
    ) -> User:
        """Insert a user; AlreadyExists(username_taken) if the name is used in any case or
        compatibility form (even by a deleted user, so a name can never be taken over)."""

    def ensure_admin(
        self, *, user_id: str, username: str, password_hash: str, now: datetime
    ) -> User:
        """Insert this admin unless someone holds the name (any form); return whoever holds
        it, deleted or not, unchanged. Safe when replicas run it at the same moment."""

    def get_user(self, user_id: str) -> User | None:
        """The user by id, deleted or not; None if no such id."""

    def get_user_by_username(self, username: str) -> User | None:
        """The live (not deleted) user of that name in any case or compatibility form
        (compared canonically, wallet_service.identity); None otherwise."""

    def change_password(
        self, *, user_id: str, password_hash: str, expected_version: int
    ) -> int | None:
        """Set the hash and bump the credentials version, only if the live user is still at
        `expected_version`; the new version, or None when it moved on (or the user is gone)."""

    def revoke_tokens(self, *, user_id: str) -> int:
        """Bump the credentials version (every token issued before dies); the new version.
        NotFound(user_not_found) for a deleted or unknown user."""

    def set_role(self, *, user_id: str, role: Role) -> User:
        """Change the role and bump the credentials version in one transaction."""

    def reset_admin(self, *, user_id: str, password_hash: str) -> User:
        """Re-key an admin (new hash, not deleted) and bump its credentials version."""

    def soft_delete_user(self, *, user_id: str, now: datetime, require_zero_balances: bool) -> User:
        """Mark deleted. With `require_zero_balances`, FailedPrecondition(balance_not_zero)
        while any balance is not zero (checked after taking the user's row lock)."""

    def balance(self, *, user_id: str, currency: str) -> int:
        """Balance in minor units; 0 when the user never held that currency."""

    def balances(self, *, user_id: str) -> list[tuple[str, int]]:
        """(currency, minor units) for each currency the user holds, sorted by code."""

    def find_by_idempotency_key(self, *, initiated_by: str, key: str) -> Transaction | None:
        """The transaction the caller recorded under `key`, if any."""

    def sender_turn(self, user_id: str) -> AbstractContextManager[None]:
        """Hold this user's turn to score and commit one movement: while held, no other
        movement of the user, in this process or another sharing the database, is between
        its feature read and its commit (see wallet_service.sender_turns). Unavailable
        (sender_busy) if the turn is not free within the wait limit."""

    def movement_features(
        self, *, user_id: str, currency: str, debit_user_id: str | None, now: datetime
    ) -> MovementFeatures:
        """Counts and sums of the user's completed movements in `currency` over the last
        hour and day, read without locks (call it inside `sender_turn` so the movements of
        the user still in flight have committed)."""

    def apply_movements(self, plans: Sequence[MovementPlan]) -> list[MovementResult]:
        """Apply the movements in one database transaction, each on its own terms: debit
        (never below zero for a user account), credit, transaction row and two ledger
        entries; a blocked plan (`plan.rejected`) records a rejected row and moves nothing.
        Per plan, the result is its outcome (a replay of the stored one when the caller's
        idempotency key was used before with the same request) or the WalletError that
        refused it: AlreadyExists(idempotency_key_reused), FailedPrecondition
        (insufficient_funds | already_reversed | account_frozen | balance_limit_exceeded),
        NotFound(recipient_not_found); each decided by `ledger.decide_movement`. Locks the
        users debited or credited (share) and the accounts touched (update, in id order)
        until commit."""

    def get_transaction(self, tx_id: str) -> Transaction | None:
        """The transaction by id, deleted or not; None if there is none."""

    def list_transactions(self, query: TransactionQuery) -> list[Transaction]:
        """Newest first, at most `query.limit` rows."""

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
        """Resolve a pending flagged transaction. NotFound if absent or not flagged;
        FailedPrecondition(already_reviewed) if it was resolved before. With
        `freeze_reason`, the transaction's initiator is frozen in the same database
        transaction (an earlier freeze record is kept)."""

    def freeze_user(self, *, user_id: str, frozen_by: str, reason: str, now: datetime) -> User:
        """Freeze a live user (who, when, why); a frozen user stays as first frozen.
        NotFound(user_not_found) if no live user has that id."""

    def unfreeze_user(self, *, user_id: str) -> User:
        """Clear the freeze of a live user (no-op if not frozen); NotFound otherwise."""

    def soft_delete_transaction(self, *, tx_id: str, now: datetime) -> Transaction:
        """Hide from the owners' listings (idempotent); balances never change."""

    def ledger_violations(self) -> list[str]:
        """Every broken ledger invariant, described; empty when the books are sound."""


class SqlStore:
    """`WalletStore` on SQLAlchemy Core; the same statements serve SQLite and PostgreSQL."""

    def __init__(self, engine: Engine, *, sender_turn_connections: int = 8) -> None:
        """`sender_turn_connections`: how many pooled connections PostgreSQL sender turns
        may hold at once; keep it below the pool's capacity so reads and writes always
        find a connection."""
        self._engine = engine
        self._is_postgres = engine.dialect.name == "postgresql"
        self.sender_turns = SenderTurns(engine, max_connections=sender_turn_connections)

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- transactions -----------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read; on PostgreSQL in autocommit (no BEGIN/COMMIT round trips: each read
        method is one statement or does not need a snapshot across its statements)."""
        try:
            with self._engine.connect() as conn:
                if self._is_postgres:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                else:
                    conn = conn.execution_options(**{READ_ONLY_OPTION: True})
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise _storage_unavailable() from exc

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction, retrying transient conflicts a bounded
        number of times (PostgreSQL deadlock/serialization, SQLite busy)."""
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            try:
                with self._engine.begin() as conn:
                    return work(conn)
            except OperationalError as exc:
                if not self._is_transient(exc):
                    # Connection lost or database down: the client may retry, safely so with
                    # its idempotency key (even when the commit's fate is unknown).
                    raise _storage_unavailable() from exc
                if attempt == MAX_WRITE_ATTEMPTS:
                    raise
            time.sleep(random.uniform(0, 0.005 * 2**attempt))  # jittered backoff
        raise AssertionError("unreachable")

    def _is_transient(self, exc: DBAPIError) -> bool:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _RETRYABLE_SQLSTATES:
            return True
        return "database is locked" in str(exc.orig)

    # -- users ------------------------------------------------------------------------

    def create_user(
        self, *, user_id: str, username: str, password_hash: str, role: Role, now: datetime
    ) -> User:
        row = _new_user_row(user_id, username, password_hash, role, now)
        try:
            self._write(lambda conn: conn.execute(insert(users).values(**row)))
        except IntegrityError as exc:
            raise AlreadyExists("username_taken", f"Username {username!r} is taken") from exc
        return User(
            id=user_id,
            username=username,
            role=role,
            created_at=now,
            deleted_at=None,
            password_hash=password_hash,
            credentials_version=0,
        )

    def ensure_admin(
        self, *, user_id: str, username: str, password_hash: str, now: datetime
    ) -> User:
        # One INSERT ... ON CONFLICT DO NOTHING: replicas bootstrapping together cannot race,
        # and an existing holder of the name is never changed here (the service decides).
        row = _new_user_row(user_id, username, password_hash, Role.ADMIN, now)
        stmt = self._insert(users).values(**row).on_conflict_do_nothing()
        self._write(lambda conn: conn.execute(stmt))
        with self._read() as conn:
            found = conn.execute(
                select(users).where(users.c.username_canonical == row["username_canonical"])
            ).one()
        return _user(found)

    def _insert(self, table: Any) -> Any:
        """INSERT with ON CONFLICT support, in this database's dialect."""
        return (postgresql.insert if self._is_postgres else sqlite.insert)(table)

    def get_user(self, user_id: str) -> User | None:
        with self._read() as conn:
            row = conn.execute(_USER_BY_ID, {"user_id": user_id}).one_or_none()
        return _user(row) if row else None

    def get_user_by_username(self, username: str) -> User | None:
        with self._read() as conn:
            row = conn.execute(
                _LIVE_USER_BY_NAME, {"canonical": canonical_username(username)}
            ).one_or_none()
        return _user(row) if row else None

    def change_password(
        self, *, user_id: str, password_hash: str, expected_version: int
    ) -> int | None:
        return self._bump_credentials(
            user_id,
            {"password_hash": password_hash},
            users.c.credentials_version == expected_version,
        )

    def revoke_tokens(self, *, user_id: str) -> int:
        version = self._bump_credentials(user_id, {})
        if version is None:
            raise NotFound("user_not_found", "User not found")
        return version

    def set_role(self, *, user_id: str, role: Role) -> User:
        if self._bump_credentials(user_id, {"role": role.value}) is None:
            raise NotFound("user_not_found", "User not found")
        return self._existing_user(user_id)

    def reset_admin(self, *, user_id: str, password_hash: str) -> User:
        self._bump_credentials(
            user_id,
            {"password_hash": password_hash, "deleted_at": None},
            users.c.role == Role.ADMIN.value,
            live_only=False,
        )
        return self._existing_user(user_id)

    def _bump_credentials(
        self,
        user_id: str,
        values: dict[str, Any],
        *conditions: ColumnElement[bool],
        live_only: bool = True,
    ) -> int | None:
        """UPDATE the user with `values` and credentials_version + 1 in one statement (so
        the change and the revocation commit together); the new version, or None when no
        row matched."""
        where = [users.c.id == user_id, *conditions]
        if live_only:
            where.append(users.c.deleted_at.is_(None))
        stmt = (
            update(users)
            .where(*where)
            .values(**values, credentials_version=users.c.credentials_version + 1)
            .returning(users.c.credentials_version)
        )
        version = self._write(lambda conn: conn.execute(stmt).scalar_one_or_none())
        return int(version) if version is not None else None

    def _existing_user(self, user_id: str) -> User:
        user = self.get_user(user_id)
        assert user is not None
        return user

    def soft_delete_user(self, *, user_id: str, now: datetime, require_zero_balances: bool) -> User:
        def work(conn: Connection) -> None:
            # Updating the user row first takes its lock, so a concurrent credit (which
            # holds a share lock on it) either finishes before our balance check or fails.
            result = conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.deleted_at.is_(None))
                .values(deleted_at=now)
            )
            if result.rowcount == 0:
                raise NotFound("user_not_found", "User not found")
            if require_zero_balances:
                held = (
                    conn.execute(
                        select(accounts.c.currency)
                        .where(accounts.c.owner_user_id == user_id, accounts.c.balance_minor != 0)
                        .order_by(accounts.c.currency)
                    )
                    .scalars()
                    .all()
                )
                if held:
                    raise FailedPrecondition(
                        "balance_not_zero",
                        f"Withdraw or transfer every balance first (non-zero: {', '.join(held)})",
                    )

        self._write(work)
        user = self.get_user(user_id)
        assert user is not None
        return user

    # -- balances ---------------------------------------------------------------------

    def balance(self, *, user_id: str, currency: str) -> int:
        with self._read() as conn:
            value = conn.execute(
                select(accounts.c.balance_minor).where(
                    accounts.c.owner_user_id == user_id, accounts.c.currency == currency
                )
            ).scalar_one_or_none()
        return int(value or 0)

    def balances(self, *, user_id: str) -> list[tuple[str, int]]:
        with self._read() as conn:
            rows = conn.execute(
                select(accounts.c.currency, accounts.c.balance_minor)
                .where(accounts.c.owner_user_id == user_id)
                .order_by(accounts.c.currency)
            ).all()
        return [(str(r.currency), int(r.balance_minor)) for r in rows]

    # -- movements --------------------------------------------------------------------

    def find_by_idempotency_key(self, *, initiated_by: str, key: str) -> Transaction | None:
        with self._read() as conn:
            # A cheap probe first: almost every key is new, and the full row needs five joins.
            probe = conn.execute(_KEY_PROBE, {"caller": initiated_by, "key": key})
            if probe.scalar_one_or_none() is None:
                return None
            row = conn.execute(_PRIOR_BY_KEYS, {"callers": [initiated_by], "keys": [key]}).one()
        return _transaction(row)

    def sender_turn(self, user_id: str) -> AbstractContextManager[None]:
        return self.sender_turns.turn(user_id)

    def movement_features(
        self, *, user_id: str, currency: str, debit_user_id: str | None, now: datetime
    ) -> MovementFeatures:
        params = {
            "user_id": user_id,
            "currency": currency,
            "since": now - timedelta(days=1),
            "hour_ago": now - timedelta(hours=1),
            "debit_user_id": debit_user_id,
        }
        with self._read() as conn:
            totals = conn.execute(_FEATURE_TOTALS, params).one()
            recent = conn.execute(_FEATURE_RECENT_AMOUNTS, params).scalars().all()
        return MovementFeatures(
            account_age_seconds=max(0, int((now - as_utc(totals.created_at)).total_seconds())),
            count_last_day=int(totals.count_day),
            sum_last_day_minor=int(totals.sum_day),
            count_last_hour=int(totals.count_hour),
            sum_last_hour_minor=int(totals.sum_hour),
            distinct_counterparties_last_day=int(totals.counterparties),
            recent_day_amounts_minor=tuple(recent),
            balance_minor=int(totals.balance or 0) if debit_user_id else 0,
        )

    def apply_movements(self, plans: Sequence[MovementPlan]) -> list[MovementResult]:
        """Apply `plans` in ONE database transaction (group commit: one lock round, one
        commit, one fsync for all). Each movement still stands alone: one that is refused
        (insufficient funds, deleted recipient, reused key, already reversed) writes nothing
        and does not disturb the others. Results come back in the order of `plans`."""
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            try:
                return self._write(lambda conn: _Batch(self, conn, plans).run())
            except IntegrityError:
                # Another writer (another replica) committed one of our idempotency keys or
                # reversals between our check and our insert; the rerun will see it.
                if attempt == MAX_WRITE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _lock_users(
        self, conn: Connection, user_ids: set[str | None]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """Share-lock the live users among `user_ids`; returns (live, frozen among them).
        PostgreSQL: a concurrent soft deletion or freeze waits for us (and we for it);
        SQLite is serialised by BEGIN IMMEDIATE anyway."""
        ids = sorted(i for i in user_ids if i)
        if not ids:
            return frozenset(), frozenset()
        rows = conn.execute(
            select(users.c.id, users.c.frozen_at)
            .where(users.c.id.in_(ids), users.c.deleted_at.is_(None))
            .order_by(users.c.id)
            .with_for_update(read=True)
        ).all()
        live = frozenset(r.id for r in rows)
        return live, frozenset(r.id for r in rows if r.frozen_at is not None)

    def _lock_accounts(
        self, conn: Connection, wanted: set[AccountKey], create: set[AccountKey], now: datetime
    ) -> dict[AccountKey, LockedAccount]:
        """Lock the accounts named by `wanted` in id order (so concurrent batches cannot
        deadlock), creating the ones in `create` that do not exist yet."""
        found = self._select_accounts(conn, wanted)
        missing = [key for key in create if key not in found]
        if missing:
            conn.execute(
                self._insert(accounts).on_conflict_do_nothing(),
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
            found |= self._select_accounts(conn, set(missing))
        return found

    def _select_accounts(
        self, conn: Connection, keys: set[AccountKey]
    ) -> dict[AccountKey, LockedAccount]:
        owners = {owner for owner, _ in keys if owner}
        currencies = {currency for _, currency in keys}
        matches_owner: ColumnElement[bool] = accounts.c.owner_user_id.in_(sorted(owners))
        if any(owner is None for owner, _ in keys):
            matches_owner = or_(matches_owner, accounts.c.kind == "external")
        rows = conn.execute(
            select(
                accounts.c.id,
                accounts.c.owner_user_id,
                accounts.c.currency,
                accounts.c.kind,
                accounts.c.balance_minor,
            )
            .where(accounts.c.currency.in_(sorted(currencies)), matches_owner)
            .order_by(accounts.c.id)
            .with_for_update()
        ).all()
        return {
            (row.owner_user_id, row.currency): LockedAccount(
                id=int(row.id), is_user=row.kind == "user", balance=int(row.balance_minor)
            )
            for row in rows
        }

    def _prior_transactions(
        self, conn: Connection, plans: Sequence[MovementPlan]
    ) -> tuple[dict[tuple[str, str], Transaction], set[str]]:
        """Committed transactions under the batch's idempotency keys, and which of the
        originals the batch wants to reverse are reversed already."""
        keys = {(p.initiated_by, p.idempotency_key) for p in plans if p.idempotency_key}
        prior: dict[tuple[str, str], Transaction] = {}
        if keys:
            # One statement of fixed shape for any batch: a superset by the two IN lists,
            # narrowed to the exact (caller, key) pairs here.
            rows = conn.execute(
                _PRIOR_BY_KEYS,
                {"callers": sorted({c for c, _ in keys}), "keys": sorted({k for _, k in keys})},
            )
            for row in rows:
                tx = _transaction(row)
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

    # -- listings, reviews, deletion ----------------------------------------------------

    def get_transaction(self, tx_id: str) -> Transaction | None:
        with self._read() as conn:
            row = conn.execute(_TRANSACTION_SELECT.where(transactions.c.id == tx_id)).one_or_none()
        return _transaction(row) if row else None

    def list_transactions(self, query: TransactionQuery) -> list[Transaction]:
        stmt = _TRANSACTION_SELECT
        t = transactions
        if query.user_id is not None:
            stmt = stmt.where(
                or_(
                    _FROM_ACCOUNT.c.owner_user_id == query.user_id,
                    _TO_ACCOUNT.c.owner_user_id == query.user_id,
                    t.c.initiated_by == query.user_id,
                )
            )
        if query.after_id is not None:
            stmt = stmt.where(t.c.id < query.after_id)
        if query.currency is not None:
            stmt = stmt.where(t.c.currency == query.currency)
        if query.type is not None:
            stmt = stmt.where(t.c.type == query.type.value)
        if query.since is not None:
            stmt = stmt.where(t.c.created_at >= query.since)
        if query.until is not None:
            stmt = stmt.where(t.c.created_at < query.until)
        if not query.include_deleted:
            stmt = stmt.where(t.c.deleted_at.is_(None))
        if query.flagged_only:
            stmt = stmt.where(t.c.flagged.is_(True))
        if query.review_status is not None:
            stmt = stmt.where(t.c.review_status == query.review_status.value)
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(t.c.id.desc()).limit(query.limit)).all()
        return [_transaction(r) for r in rows]

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
        def work(conn: Connection) -> None:
            result = conn.execute(
                update(transactions)
                .where(
                    transactions.c.id == tx_id,
                    transactions.c.flagged.is_(True),
                    transactions.c.review_status == ReviewStatus.PENDING.value,
                )
                .values(
                    review_status=resolution.value,
                    reviewed_by=reviewer_id,
                    reviewed_at=now,
                    review_note=note,
                )
            )
            if result.rowcount == 1:
                if freeze_reason is not None:
                    initiator = select(transactions.c.initiated_by).where(
                        transactions.c.id == tx_id
                    )
                    _freeze(conn, initiator.scalar_subquery(), reviewer_id, freeze_reason, now)
                return
            current = conn.execute(
                select(transactions.c.flagged).where(transactions.c.id == tx_id)
            ).scalar_one_or_none()
            if not current:
                raise NotFound("transaction_not_found", "Flagged transaction not found")
            raise FailedPrecondition("already_reviewed", "Transaction was already reviewed")

        self._write(work)
        found = self.get_transaction(tx_id)
        assert found is not None
        return found

    def freeze_user(self, *, user_id: str, frozen_by: str, reason: str, now: datetime) -> User:
        def work(conn: Connection) -> None:
            _freeze(conn, user_id, frozen_by, reason, now)
            _require_live_user(conn, user_id)

        self._write(work)
        return self._user_after_write(user_id)

    def unfreeze_user(self, *, user_id: str) -> User:
        def work(conn: Connection) -> None:
            conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.deleted_at.is_(None))
                .values(frozen_at=None, frozen_by=None, frozen_reason=None)
            )
            _require_live_user(conn, user_id)

        self._write(work)
        return self._user_after_write(user_id)

    def _user_after_write(self, user_id: str) -> User:
        user = self.get_user(user_id)
        assert user is not None
        return user

    def soft_delete_transaction(self, *, tx_id: str, now: datetime) -> Transaction:
        def work(conn: Connection) -> None:
            found = conn.execute(
                update(transactions)
                .where(transactions.c.id == tx_id)
                .values(deleted_at=func.coalesce(transactions.c.deleted_at, now))
            ).rowcount
            if found == 0:
                raise NotFound("transaction_not_found", "Transaction not found")

        self._write(work)
        deleted = self.get_transaction(tx_id)
        assert deleted is not None
        return deleted

    # -- invariants ---------------------------------------------------------------------

    def ledger_violations(self) -> list[str]:
        e, a, t = ledger_entries, accounts, transactions
        problems: list[str] = []
        with self._read() as conn:
            for tx_id, total in conn.execute(
                select(e.c.transaction_id, func.sum(e.c.amount_minor))
                .group_by(e.c.transaction_id)
                .having(func.sum(e.c.amount_minor) != 0)
            ):
                problems.append(f"transaction {tx_id} entries sum to {total}, not 0")
            entry_sums = (
                select(e.c.account_id, func.sum(e.c.amount_minor).label("total"))
                .group_by(e.c.account_id)
                .subquery()
            )
            for account_id, balance, total in conn.execute(
                select(a.c.id, a.c.balance_minor, func.coalesce(entry_sums.c.total, 0))
                .select_from(a.outerjoin(entry_sums, entry_sums.c.account_id == a.c.id))
                .where(a.c.balance_minor != func.coalesce(entry_sums.c.total, 0))
            ):
                problems.append(f"account {account_id} balance {balance} != entries {total}")
            for account_id, balance in conn.execute(
                select(a.c.id, a.c.balance_minor).where(a.c.kind == "user", a.c.balance_minor < 0)
            ):
                problems.append(f"user account {account_id} is negative: {balance}")
            for currency, total in conn.execute(
                select(a.c.currency, func.sum(a.c.balance_minor))
                .group_by(a.c.currency)
                .having(func.sum(a.c.balance_minor) != 0)
            ):
                problems.append(f"{currency} balances sum to {total}, not 0")
            entry_count = (
                select(func.count())
                .where(e.c.transaction_id == t.c.id)
                .correlate(t)
                .scalar_subquery()
            )
            expected = case((t.c.status == TxStatus.COMPLETED.value, 2), else_=0)
            for tx_id, count in conn.execute(
                select(t.c.id, entry_count).where(entry_count != expected)
            ):
                problems.append(f"transaction {tx_id} has {count} entries")
        return problems


# -- row mapping ---------------------------------------------------------------------------

_FROM_ACCOUNT = accounts.alias("from_account")
_TO_ACCOUNT = accounts.alias("to_account")
_FROM_USER = users.alias("from_user")
_TO_USER = users.alias("to_user")
_REVERSAL = transactions.alias("reversal")


def _build_transaction_select() -> Any:
    t = transactions
    return select(
        t,
        _FROM_USER.c.id.label("from_user_id"),
        _FROM_USER.c.username.label("from_username"),
        _TO_USER.c.id.label("to_user_id"),
        _TO_USER.c.username.label("to_username"),
        _REVERSAL.c.id.label("reversed_by_id"),
    ).select_from(
        t.outerjoin(_FROM_ACCOUNT, _FROM_ACCOUNT.c.id == t.c.from_account_id)
        .outerjoin(_FROM_USER, _FROM_USER.c.id == _FROM_ACCOUNT.c.owner_user_id)
        .outerjoin(_TO_ACCOUNT, _TO_ACCOUNT.c.id == t.c.to_account_id)
        .outerjoin(_TO_USER, _TO_USER.c.id == _TO_ACCOUNT.c.owner_user_id)
        .outerjoin(_REVERSAL, _REVERSAL.c.reverses_transaction_id == t.c.id)
    )


_TRANSACTION_SELECT = _build_transaction_select()
# The hot statements are built once: building and cache-keying them per call cost more
# CPU than running them.
_USER_BY_ID = select(users).where(users.c.id == bindparam("user_id"))
_LIVE_USER_BY_NAME = select(users).where(
    users.c.username_canonical == bindparam("canonical"), users.c.deleted_at.is_(None)
)
_PRIOR_BY_KEYS = _TRANSACTION_SELECT.where(
    transactions.c.initiated_by.in_(bindparam("callers", expanding=True)),
    transactions.c.idempotency_key.in_(bindparam("keys", expanding=True)),
)
_KEY_PROBE = select(transactions.c.id).where(
    transactions.c.initiated_by == bindparam("caller"),
    transactions.c.idempotency_key == bindparam("key"),
)


# Fraud features, with bounded work however busy the user: over the newest
# FEATURE_WINDOW_LIMIT movements of the day (counts saturate there, far above what any rule
# looks at); the user's age and the source balance ride along as scalar subqueries.
_MY_MOVEMENTS_TODAY = and_(
    transactions.c.initiated_by == bindparam("user_id"),
    transactions.c.currency == bindparam("currency"),
    transactions.c.status == TxStatus.COMPLETED.value,
    transactions.c.type != TxType.REVERSAL.value,
    transactions.c.created_at >= bindparam("since"),
)
_FEATURE_WINDOW = (
    select(
        transactions.c.amount_minor,
        transactions.c.created_at,
        case((transactions.c.type == TxType.TRANSFER.value, transactions.c.to_account_id)).label(
            "counterparty"
        ),
    )
    .where(_MY_MOVEMENTS_TODAY)
    .order_by(transactions.c.created_at.desc())
    .limit(FEATURE_WINDOW_LIMIT)
    .subquery()
)
_IN_LAST_HOUR = _FEATURE_WINDOW.c.created_at >= bindparam("hour_ago")
_FEATURE_TOTALS = select(
    func.count().label("count_day"),
    func.coalesce(func.sum(_FEATURE_WINDOW.c.amount_minor), 0).label("sum_day"),
    func.coalesce(func.sum(case((_IN_LAST_HOUR, 1), else_=0)), 0).label("count_hour"),
    func.coalesce(
        func.sum(case((_IN_LAST_HOUR, _FEATURE_WINDOW.c.amount_minor), else_=0)), 0
    ).label("sum_hour"),
    func.count(func.distinct(_FEATURE_WINDOW.c.counterparty)).label("counterparties"),
    select(users.c.created_at)
    .where(users.c.id == bindparam("user_id"))
    .scalar_subquery()
    .label("created_at"),
    select(accounts.c.balance_minor)
    .where(
        accounts.c.owner_user_id == bindparam("debit_user_id"),
        accounts.c.currency == bindparam("currency"),
    )
    .scalar_subquery()
    .label("balance"),
).select_from(_FEATURE_WINDOW)
_FEATURE_RECENT_AMOUNTS = (
    select(transactions.c.amount_minor)
    .where(_MY_MOVEMENTS_TODAY)
    .order_by(transactions.c.created_at.desc())
    .limit(FEATURE_WINDOW_LIMIT)
)


def _user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        username=row.username,
        role=Role(row.role),
        created_at=as_utc(row.created_at),
        deleted_at=as_utc(row.deleted_at) if row.deleted_at else None,
        password_hash=row.password_hash,
        credentials_version=int(row.credentials_version),
        frozen_at=as_utc(row.frozen_at) if row.frozen_at else None,
        frozen_by=row.frozen_by,
        frozen_reason=row.frozen_reason,
    )


def _new_user_row(
    user_id: str, username: str, password_hash: str, role: Role, now: datetime
) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": username,
        "username_canonical": canonical_username(username),
        "password_hash": password_hash,
        "role": role.value,
        "created_at": now,
    }


def _transaction(row: Row[Any]) -> Transaction:
    verdict = None
    if row.fraud_decision is not None:
        reasons = tuple(
            FraudReason(r["rule_id"], r["description"])
            for r in json.loads(row.fraud_reasons or "[]")
        )
        verdict = FraudVerdict(
            score=int(row.fraud_score or 0),
            decision=Decision(row.fraud_decision),
            reasons=reasons,
            rules_version=row.fraud_rules_version or "",
        )
    return Transaction(
        id=row.id,
        type=TxType(row.type),
        status=TxStatus(row.status),
        currency=row.currency,
        amount_minor=int(row.amount_minor),
        from_user_id=row.from_user_id,
        from_username=row.from_username,
        to_user_id=row.to_user_id,
        to_username=row.to_username,
        initiated_by=row.initiated_by,
        idempotency_key=row.idempotency_key,
        request_fingerprint=row.request_fingerprint,
        created_at=as_utc(row.created_at),
        deleted_at=as_utc(row.deleted_at) if row.deleted_at else None,
        verdict=verdict,
        flagged=bool(row.flagged),
        review_status=ReviewStatus(row.review_status) if row.review_status else None,
        reviewed_by=row.reviewed_by,
        reviewed_at=as_utc(row.reviewed_at) if row.reviewed_at else None,
        review_note=row.review_note,
        reverses_transaction_id=row.reverses_transaction_id,
        reversed_by_transaction_id=row.reversed_by_id,
        initiator_balance_after_minor=row.initiator_balance_after_minor,
        note=row.note,
    )


def _freeze(conn: Connection, user_id: Any, frozen_by: str, reason: str, now: datetime) -> None:
    """Freeze the live user `user_id` (a value or a scalar subquery) unless frozen already:
    the first record of who, when and why is the one kept."""
    conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.deleted_at.is_(None), users.c.frozen_at.is_(None))
        .values(frozen_at=now, frozen_by=frozen_by, frozen_reason=reason)
    )


def _require_live_user(conn: Connection, user_id: str) -> None:
    live = conn.execute(
        select(users.c.id).where(users.c.id == user_id, users.c.deleted_at.is_(None))
    ).scalar_one_or_none()
    if live is None:
        raise NotFound("user_not_found", "User not found")


def _storage_unavailable() -> Unavailable:
    return Unavailable(
        "storage_unavailable", "The database is unavailable; retry (with the same idempotency key)"
    )


class _Batch:
    """One group-commit transaction: reads and locks what the plans need, asks the pure
    `ledger.decide_movement` about each plan against the locked balances (earlier plans of
    the batch applied), then writes everything in bulk. No money rule lives here."""

    def __init__(self, store: SqlStore, conn: Connection, plans: Sequence[MovementPlan]) -> None:
        self.store, self.conn, self.plans = store, conn, plans
        self.tx_rows: list[dict[str, Any]] = []
        self.entry_rows: list[dict[str, Any]] = []
        self.dirty: set[int] = set()
        self.done_by_key: dict[tuple[str, str], Transaction] = {}

    def run(self) -> list[MovementResult]:
        now = max(p.created_at for p in self.plans)
        moving = [p for p in self.plans if not p.rejected]
        parties = {p.credit_user_id for p in self.plans} | {p.debit_user_id for p in self.plans}
        self.live, self.frozen = self.store._lock_users(self.conn, parties)
        self.prior, self.reversed_already = self.store._prior_transactions(self.conn, self.plans)
        wanted = {(p.debit_user_id, p.currency) for p in self.plans} | {
            (p.credit_user_id, p.currency) for p in self.plans
        }
        create = {(p.credit_user_id, p.currency) for p in moving} | {
            (None, p.currency) for p in moving if p.debit_user_id is None
        }
        self.accounts = self.store._lock_accounts(self.conn, wanted, create, now)
        results = [self._decide(plan) for plan in self.plans]
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
            _transaction_row(
                decision.transaction, debit.id if debit else None, credit.id if credit else None
            )
        )
        if plan.reverses_transaction_id:
            self.reversed_already.add(plan.reverses_transaction_id)

    def _write(self) -> None:
        """Final balances (absolute values of rows we hold locked), then the transaction rows
        (a unique-key race raises IntegrityError and the whole batch reruns), then entries."""
        if self.dirty:
            by_id = {a.id: a for a in self.accounts.values()}
            self.conn.execute(
                update(accounts)
                .where(accounts.c.id == bindparam("account_id"))
                .values(balance_minor=bindparam("new_balance")),
                [{"account_id": i, "new_balance": by_id[i].balance} for i in sorted(self.dirty)],
            )
        if self.tx_rows:
            self.conn.execute(insert(transactions), self.tx_rows)
        if self.entry_rows:
            self.conn.execute(insert(ledger_entries), self.entry_rows)


def _transaction_row(tx: Transaction, from_id: int | None, to_id: int | None) -> dict[str, Any]:
    verdict = tx.verdict
    return {
        "id": tx.id,
        "type": tx.type.value,
        "status": tx.status.value,
        "currency": tx.currency,
        "amount_minor": tx.amount_minor,
        "from_account_id": from_id,
        "to_account_id": to_id,
        "initiated_by": tx.initiated_by,
        "idempotency_key": tx.idempotency_key,
        "request_fingerprint": tx.request_fingerprint,
        "created_at": tx.created_at,
        "flagged": tx.flagged,
        "review_status": tx.review_status.value if tx.review_status else None,
        "reverses_transaction_id": tx.reverses_transaction_id,
        "initiator_balance_after_minor": tx.initiator_balance_after_minor,
        "note": tx.note,
        "fraud_score": verdict.score if verdict else None,
        "fraud_decision": verdict.decision.value if verdict else None,
        "fraud_reasons": json.dumps(
            [{"rule_id": r.rule_id, "description": r.description} for r in verdict.reasons]
        )
        if verdict
        else None,
        "fraud_rules_version": verdict.rules_version if verdict else None,
    }
