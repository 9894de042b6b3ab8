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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    Engine,
    Row,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from wallet_service.database import READ_ONLY_OPTION
from wallet_service.errors import AlreadyExists, FailedPrecondition, NotFound
from wallet_service.ledger import replay_outcome
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

T = TypeVar("T")

MAX_WRITE_ATTEMPTS = 8
RECENT_AMOUNTS_LIMIT = 200
# PostgreSQL serialization failure and deadlock: safe to retry the whole transaction.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


class IdempotencyConflict(Exception):
    """Raised inside a write when another transaction committed the same key first."""


class WalletStore(Protocol):
    """What the domain needs from storage. Every call is one database transaction."""

    def create_user(
        self, *, user_id: str, username: str, password_hash: str, role: Role, now: datetime
    ) -> User:
        """Insert a user; AlreadyExists(username_taken) if the name is used (even by a
        deleted user, so a name can never be taken over)."""

    def ensure_admin(
        self, *, user_id: str, username: str, password_hash: str, now: datetime
    ) -> User:
        """Create the admin, or promote and re-key an existing user of that name."""

    def get_user(self, user_id: str) -> User | None:
        """The user by id, deleted or not; None if no such id."""

    def get_user_by_username(self, username: str) -> User | None:
        """The live (not deleted) user of that name; None otherwise."""

    def soft_delete_user(self, *, user_id: str, now: datetime, require_zero_balances: bool) -> User:
        """Mark deleted. With `require_zero_balances`, FailedPrecondition(balance_not_zero)
        while any balance is not zero (checked after taking the user's row lock)."""

    def balance(self, *, user_id: str, currency: str) -> int:
        """Balance in minor units; 0 when the user never held that currency."""

    def balances(self, *, user_id: str) -> list[tuple[str, int]]:
        """(currency, minor units) for each currency the user holds, sorted by code."""

    def find_by_idempotency_key(self, *, initiated_by: str, key: str) -> Transaction | None:
        """The transaction the caller recorded under `key`, if any."""

    def movement_features(
        self, *, user_id: str, currency: str, debit_user_id: str | None, now: datetime
    ) -> MovementFeatures:
        """Counts and sums of the user's completed movements in `currency` over the last
        hour and day, read without locks."""

    def apply_movement(self, plan: MovementPlan) -> MovementOutcome:
        """Write the movement atomically: debit (never below zero for a user account),
        credit, transaction row and two ledger entries. Replays the stored outcome when
        the caller's idempotency key was already used with the same fingerprint;
        AlreadyExists(idempotency_key_reused) when used with another one;
        FailedPrecondition(insufficient_funds) when the debit would overdraw;
        NotFound(recipient_not_found) when the credited user is deleted."""

    def record_rejected(self, plan: MovementPlan) -> MovementOutcome:
        """Record a blocked movement (no entries, no balance change), idempotently."""

    def get_transaction(self, tx_id: str) -> Transaction | None:
        """The transaction by id, deleted or not; None if there is none."""

    def list_transactions(self, query: TransactionQuery) -> list[Transaction]:
        """Newest first, at most `query.limit` rows."""

    def review_transaction(
        self, *, tx_id: str, resolution: ReviewStatus, reviewer_id: str, note: str, now: datetime
    ) -> Transaction:
        """Resolve a pending flagged transaction. NotFound if absent or not flagged;
        FailedPrecondition(already_reviewed) if it was resolved before."""

    def soft_delete_transaction(self, *, tx_id: str, now: datetime) -> Transaction:
        """Hide from the owners' listings (idempotent); balances never change."""

    def ledger_violations(self) -> list[str]:
        """Every broken ledger invariant, described; empty when the books are sound."""


class SqlStore:
    """`WalletStore` on SQLAlchemy Core; the same statements serve SQLite and PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._is_postgres = engine.dialect.name == "postgresql"

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- transactions -----------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY_OPTION: True})
            with conn.begin():
                yield conn

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction, retrying transient conflicts a bounded
        number of times (PostgreSQL deadlock/serialization, SQLite busy)."""
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            try:
                with self._engine.begin() as conn:
                    return work(conn)
            except OperationalError as exc:
                if attempt == MAX_WRITE_ATTEMPTS or not self._is_transient(exc):
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
        def work(conn: Connection) -> None:
            conn.execute(
                insert(users).values(
                    id=user_id,
                    username=username,
                    password_hash=password_hash,
                    role=role.value,
                    created_at=now,
                )
            )

        try:
            self._write(work)
        except IntegrityError as exc:
            raise AlreadyExists("username_taken", f"Username {username!r} is taken") from exc
        return User(
            id=user_id,
            username=username,
            role=role,
            created_at=now,
            deleted_at=None,
            password_hash=password_hash,
        )

    def ensure_admin(
        self, *, user_id: str, username: str, password_hash: str, now: datetime
    ) -> User:
        # One upsert statement, so replicas bootstrapping the same admin at once cannot race.
        stmt = self._insert(users).values(
            id=user_id,
            username=username,
            password_hash=password_hash,
            role=Role.ADMIN.value,
            created_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[users.c.username],
            set_={"role": Role.ADMIN.value, "password_hash": password_hash, "deleted_at": None},
        )
        self._write(lambda conn: conn.execute(stmt))
        admin = self.get_user_by_username(username)
        assert admin is not None
        return admin

    def _insert(self, table: Any) -> Any:
        """INSERT with ON CONFLICT support, in this database's dialect."""
        return (postgresql.insert if self._is_postgres else sqlite.insert)(table)

    def get_user(self, user_id: str) -> User | None:
        with self._read() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).one_or_none()
        return _user(row) if row else None

    def get_user_by_username(self, username: str) -> User | None:
        with self._read() as conn:
            row = conn.execute(
                select(users).where(users.c.username == username, users.c.deleted_at.is_(None))
            ).one_or_none()
        return _user(row) if row else None

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
            return self._find_by_key(conn, initiated_by, key)

    def _find_by_key(self, conn: Connection, initiated_by: str, key: str) -> Transaction | None:
        row = conn.execute(
            _transaction_select().where(
                transactions.c.initiated_by == initiated_by, transactions.c.idempotency_key == key
            )
        ).one_or_none()
        return _transaction(row) if row else None

    def movement_features(
        self, *, user_id: str, currency: str, debit_user_id: str | None, now: datetime
    ) -> MovementFeatures:
        hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
        mine = and_(
            transactions.c.initiated_by == user_id,
            transactions.c.currency == currency,
            transactions.c.status == TxStatus.COMPLETED.value,
            transactions.c.type != TxType.REVERSAL.value,
            transactions.c.created_at >= day_ago,
        )
        in_hour = transactions.c.created_at >= hour_ago
        with self._read() as conn:
            totals = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(transactions.c.amount_minor), 0),
                    func.coalesce(func.sum(case((in_hour, 1), else_=0)), 0),
                    func.coalesce(
                        func.sum(case((in_hour, transactions.c.amount_minor), else_=0)), 0
                    ),
                    func.count(
                        func.distinct(
                            case(
                                (
                                    transactions.c.type == TxType.TRANSFER.value,
                                    transactions.c.to_account_id,
                                )
                            )
                        )
                    ),
                ).where(mine)
            ).one()
            recent = (
                conn.execute(
                    select(transactions.c.amount_minor)
                    .where(mine)
                    .order_by(transactions.c.id.desc())
                    .limit(RECENT_AMOUNTS_LIMIT)
                )
                .scalars()
                .all()
            )
            created = conn.execute(
                select(users.c.created_at).where(users.c.id == user_id)
            ).scalar_one()
            balance = 0
            if debit_user_id is not None:
                balance = (
                    conn.execute(
                        select(accounts.c.balance_minor).where(
                            accounts.c.owner_user_id == debit_user_id,
                            accounts.c.currency == currency,
                        )
                    ).scalar_one_or_none()
                    or 0
                )
        return MovementFeatures(
            account_age_seconds=max(0, int((now - as_utc(created)).total_seconds())),
            count_last_day=int(totals[0]),
            sum_last_day_minor=int(totals[1]),
            count_last_hour=int(totals[2]),
            sum_last_hour_minor=int(totals[3]),
            distinct_counterparties_last_day=int(totals[4]),
            recent_day_amounts_minor=tuple(int(a) for a in recent),
            balance_minor=int(balance),
        )

    def apply_movement(self, plan: MovementPlan) -> MovementOutcome:
        return self._write_idempotently(plan, lambda conn: self._apply(conn, plan))

    def record_rejected(self, plan: MovementPlan) -> MovementOutcome:
        def work(conn: Connection) -> MovementOutcome:
            from_id = self._account_id(conn, plan.debit_user_id, plan.currency)
            to_id = self._account_id(conn, plan.credit_user_id, plan.currency)
            balance = self._balance_in(conn, plan.report_balance_of, plan.currency)
            self._insert_transaction(conn, plan, TxStatus.REJECTED, from_id, to_id, balance)
            return self._outcome(conn, plan.tx_id, balance)

        return self._write_idempotently(plan, work)

    def _write_idempotently(
        self, plan: MovementPlan, work: Callable[[Connection], MovementOutcome]
    ) -> MovementOutcome:
        for _ in range(MAX_WRITE_ATTEMPTS):
            try:
                return self._write(work)
            except IdempotencyConflict:
                # Another call with our key committed first: answer as that call did.
                assert plan.idempotency_key is not None
                existing = self.find_by_idempotency_key(
                    initiated_by=plan.initiated_by, key=plan.idempotency_key
                )
                if existing is not None:
                    return replay_outcome(existing, plan.request_fingerprint)
        raise AssertionError("idempotency key neither found nor insertable")

    def _apply(self, conn: Connection, plan: MovementPlan) -> MovementOutcome:
        if plan.credit_user_id is not None:
            self._lock_live_recipient(conn, plan.credit_user_id)
        if plan.debit_user_id is None:  # money entering: the external account may be new
            debit_id: int | None = self._ensure_account(conn, None, plan.currency, plan.created_at)
        else:
            debit_id = self._account_id(conn, plan.debit_user_id, plan.currency)
        if debit_id is None:
            raise _insufficient(plan.currency, missing=True)
        credit_id = self._ensure_account(conn, plan.credit_user_id, plan.currency, plan.created_at)
        # Update in account-id order so that two opposite transfers cannot deadlock.
        new_balances: dict[int, int] = {}
        for account_id in sorted((debit_id, credit_id)):
            delta = -plan.amount_minor if account_id == debit_id else plan.amount_minor
            new_balances[account_id] = self._change_balance(conn, account_id, delta, plan.currency)
        balance_account = debit_id if plan.report_balance_of == plan.debit_user_id else credit_id
        self._insert_transaction(
            conn, plan, TxStatus.COMPLETED, debit_id, credit_id, new_balances[balance_account]
        )
        conn.execute(
            insert(ledger_entries),
            [
                {
                    "transaction_id": plan.tx_id,
                    "account_id": debit_id,
                    "amount_minor": -plan.amount_minor,
                },
                {
                    "transaction_id": plan.tx_id,
                    "account_id": credit_id,
                    "amount_minor": plan.amount_minor,
                },
            ],
        )
        return self._outcome(conn, plan.tx_id, new_balances[balance_account])

    def _lock_live_recipient(self, conn: Connection, user_id: str) -> None:
        # FOR SHARE on PostgreSQL: a concurrent soft deletion waits for us (SQLite is
        # already serialised by BEGIN IMMEDIATE).
        live = conn.execute(
            select(users.c.id)
            .where(users.c.id == user_id, users.c.deleted_at.is_(None))
            .with_for_update(read=True)
        ).scalar_one_or_none()
        if live is None:
            raise NotFound("recipient_not_found", "Recipient not found")

    def _change_balance(self, conn: Connection, account_id: int, delta: int, currency: str) -> int:
        """Apply `delta`; a user account never goes below zero (the WHERE is the guard)."""
        stmt = update(accounts).where(accounts.c.id == account_id)
        if delta < 0:
            stmt = stmt.where(
                or_(accounts.c.kind == "external", accounts.c.balance_minor >= -delta)
            )
        new_balance = conn.execute(
            stmt.values(balance_minor=accounts.c.balance_minor + delta).returning(
                accounts.c.balance_minor
            )
        ).scalar_one_or_none()
        if new_balance is None:
            raise _insufficient(currency, missing=False)
        return int(new_balance)

    def _account_id(self, conn: Connection, owner_user_id: str | None, currency: str) -> int | None:
        if owner_user_id is None:
            where = and_(accounts.c.kind == "external", accounts.c.currency == currency)
        else:
            where = and_(accounts.c.owner_user_id == owner_user_id, accounts.c.currency == currency)
        value = conn.execute(select(accounts.c.id).where(where)).scalar_one_or_none()
        return None if value is None else int(value)

    def _ensure_account(
        self, conn: Connection, owner_user_id: str | None, currency: str, now: datetime
    ) -> int:
        existing = self._account_id(conn, owner_user_id, currency)
        if existing is not None:
            return existing
        kind = "user" if owner_user_id else "external"
        conn.execute(
            self._insert(accounts)
            .values(
                owner_user_id=owner_user_id,
                currency=currency,
                kind=kind,
                balance_minor=0,
                created_at=now,
            )
            .on_conflict_do_nothing()
        )
        created = self._account_id(conn, owner_user_id, currency)
        assert created is not None
        return created

    def _balance_in(self, conn: Connection, user_id: str | None, currency: str) -> int:
        if user_id is None:
            return 0
        value = conn.execute(
            select(accounts.c.balance_minor).where(
                accounts.c.owner_user_id == user_id, accounts.c.currency == currency
            )
        ).scalar_one_or_none()
        return int(value or 0)

    def _insert_transaction(
        self,
        conn: Connection,
        plan: MovementPlan,
        status: TxStatus,
        from_id: int | None,
        to_id: int | None,
        balance_after: int,
    ) -> None:
        verdict = plan.verdict
        flagged = verdict is not None and verdict.flagged
        values: dict[str, Any] = {
            "id": plan.tx_id,
            "type": plan.type.value,
            "status": status.value,
            "currency": plan.currency,
            "amount_minor": plan.amount_minor,
            "from_account_id": from_id,
            "to_account_id": to_id,
            "initiated_by": plan.initiated_by,
            "idempotency_key": plan.idempotency_key,
            "request_fingerprint": plan.request_fingerprint,
            "created_at": plan.created_at,
            "flagged": flagged,
            "review_status": ReviewStatus.PENDING.value if flagged else None,
            "reverses_transaction_id": plan.reverses_transaction_id,
            "initiator_balance_after_minor": balance_after,
            "note": plan.note,
        }
        if verdict is not None:
            values |= {
                "fraud_score": verdict.score,
                "fraud_decision": verdict.decision.value,
                "fraud_reasons": json.dumps(
                    [{"rule_id": r.rule_id, "description": r.description} for r in verdict.reasons]
                ),
                "fraud_rules_version": verdict.rules_version,
            }
        try:
            with conn.begin_nested():  # a savepoint, so the failure is ours to interpret
                conn.execute(insert(transactions).values(**values))
        except IntegrityError as exc:
            if plan.idempotency_key and self._key_taken(conn, plan):
                raise IdempotencyConflict from exc
            if plan.reverses_transaction_id:
                raise AlreadyExists("already_reversed", "Transaction was already reversed") from exc
            raise

    def _key_taken(self, conn: Connection, plan: MovementPlan) -> bool:
        return (
            conn.execute(
                select(literal(1)).where(
                    transactions.c.initiated_by == plan.initiated_by,
                    transactions.c.idempotency_key == plan.idempotency_key,
                )
            ).first()
            is not None
        )

    def _outcome(self, conn: Connection, tx_id: str, balance: int) -> MovementOutcome:
        row = conn.execute(_transaction_select().where(transactions.c.id == tx_id)).one()
        return MovementOutcome(
            transaction=_transaction(row), balance_after_minor=balance, replayed=False
        )

    # -- listings, reviews, deletion ----------------------------------------------------

    def get_transaction(self, tx_id: str) -> Transaction | None:
        with self._read() as conn:
            row = conn.execute(
                _transaction_select().where(transactions.c.id == tx_id)
            ).one_or_none()
        return _transaction(row) if row else None

    def list_transactions(self, query: TransactionQuery) -> list[Transaction]:
        stmt = _transaction_select()
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
        self, *, tx_id: str, resolution: ReviewStatus, reviewer_id: str, note: str, now: datetime
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


def _transaction_select() -> Any:
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


def _user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        username=row.username,
        role=Role(row.role),
        created_at=as_utc(row.created_at),
        deleted_at=as_utc(row.deleted_at) if row.deleted_at else None,
        password_hash=row.password_hash,
    )


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


def _insufficient(currency: str, *, missing: bool) -> FailedPrecondition:
    detail = f"no {currency} balance" if missing else f"not enough {currency}"
    return FailedPrecondition("insufficient_funds", f"Insufficient funds: {detail}")
