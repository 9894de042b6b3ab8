"""Transactions after the fact: lookups, listings, reviews and soft deletion.
Contracts: wallet_service.store_contract.WalletStore."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Connection

from wallet_service.errors import FailedPrecondition, NotFound
from wallet_service.events import review_event
from wallet_service.models import ReviewStatus, ScoredTransaction, Transaction, TransactionQuery
from wallet_service.schema import transactions
from wallet_service.store.db import Db, present
from wallet_service.store.outbox import add_events
from wallet_service.store.rows import features_from_json, transaction_from_row
from wallet_service.store.statements import (
    FROM_ACCOUNT,
    KEY_PROBE,
    PRIOR_BY_KEYS,
    TO_ACCOUNT,
    TRANSACTION_SELECT,
)
from wallet_service.store.users import freeze


class TransactionQueries:
    """Transaction lookups, listings, reviews and soft deletion, over the store's `Db`."""

    _db: Db

    def find_by_idempotency_key(self, *, initiated_by: str, key: str) -> Transaction | None:
        with self._db.read() as conn:
            # A cheap probe first: almost every key is new, and the full row needs five joins.
            probe = conn.execute(KEY_PROBE, {"caller": initiated_by, "key": key})
            if probe.scalar_one_or_none() is None:
                return None
            row = conn.execute(PRIOR_BY_KEYS, {"callers": [initiated_by], "keys": [key]}).one()
        return transaction_from_row(row)

    def find_by_idempotency_keys(
        self, *, initiated_by: str, keys: Sequence[str]
    ) -> dict[str, Transaction]:
        if not keys:
            return {}
        with self._db.read() as conn:
            rows = conn.execute(PRIOR_BY_KEYS, {"callers": [initiated_by], "keys": sorted(keys)})
            found = [transaction_from_row(row) for row in rows]
        return {tx.idempotency_key: tx for tx in found if tx.idempotency_key}

    def get_transaction(self, tx_id: str) -> Transaction | None:
        with self._db.read() as conn:
            row = conn.execute(TRANSACTION_SELECT.where(transactions.c.id == tx_id)).one_or_none()
        return transaction_from_row(row) if row else None

    def list_transactions(self, query: TransactionQuery) -> list[Transaction]:
        stmt = TRANSACTION_SELECT
        t = transactions
        if query.user_id is not None:
            stmt = stmt.where(
                or_(
                    FROM_ACCOUNT.c.owner_user_id == query.user_id,
                    TO_ACCOUNT.c.owner_user_id == query.user_id,
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
        with self._db.read() as conn:
            rows = conn.execute(stmt.order_by(t.c.id.desc()).limit(query.limit)).all()
        return [transaction_from_row(r) for r in rows]

    def scored_transactions(
        self, *, since: datetime, until: datetime, limit: int
    ) -> list[ScoredTransaction]:
        t = transactions
        stmt = (
            TRANSACTION_SELECT.where(
                t.c.created_at >= since, t.c.created_at < until, t.c.fraud_features.is_not(None)
            )
            .order_by(t.c.created_at, t.c.id)
            .limit(limit)
        )
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
        return [
            ScoredTransaction(transaction_from_row(r), features_from_json(r.fraud_features))
            for r in rows
        ]

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
                reviewed = conn.execute(TRANSACTION_SELECT.where(transactions.c.id == tx_id))
                add_events(conn, [review_event(transaction_from_row(reviewed.one()))])
                if freeze_reason is not None:
                    initiator = select(transactions.c.initiated_by).where(
                        transactions.c.id == tx_id
                    )
                    freeze(conn, initiator.scalar_subquery(), reviewer_id, freeze_reason, now)
                return
            current = conn.execute(
                select(transactions.c.flagged).where(transactions.c.id == tx_id)
            ).scalar_one_or_none()
            if not current:
                raise NotFound("transaction_not_found", "Flagged transaction not found")
            raise FailedPrecondition("already_reviewed", "Transaction was already reviewed")

        self._db.write(work)
        return present(self.get_transaction(tx_id))

    def soft_delete_transaction(self, *, tx_id: str, now: datetime) -> Transaction:
        def work(conn: Connection) -> None:
            found = conn.execute(
                update(transactions)
                .where(transactions.c.id == tx_id)
                .values(deleted_at=func.coalesce(transactions.c.deleted_at, now))
            ).rowcount
            if found == 0:
                raise NotFound("transaction_not_found", "Transaction not found")

        self._db.write(work)
        return present(self.get_transaction(tx_id))
