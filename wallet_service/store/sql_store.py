"""`SqlStore`: the wallet's storage contract (wallet_service.store_contract.WalletStore)
on SQLAlchemy Core. The same statements serve SQLite and PostgreSQL.

It only composes the parts, each along one seam of the store:
- db.py            how reads and writes run (transactions, retries, dialect)
- users.py         users and identity
- balances.py      balances and the fraud features
- movements.py     the movement write path (locks, reads, ledger.decide_movement, bulk write)
- transactions.py  lookups, listings, reviews, soft deletion
- audit.py         the ledger audit behind ledger.verify_ledger
- sender_turns.py  one sender's movements in turn (process lock + PostgreSQL advisory lock)
- statements.py, rows.py  prebuilt statements and row mapping, shared by the parts
What each method locks, until when, and what it returns when nothing matches is stated
once, on the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import Engine

from wallet_service.models import (
    MovementFeatures,
    MovementPlan,
    ReviewStatus,
    Role,
    Transaction,
    TransactionQuery,
    User,
)
from wallet_service.store import audit, balances, movements, transactions, users
from wallet_service.store.db import Db
from wallet_service.store.sender_turns import SenderTurns
from wallet_service.store_contract import MovementResult


class SqlStore:
    """`WalletStore` on SQLAlchemy Core; the same statements serve SQLite and PostgreSQL."""

    def __init__(self, engine: Engine, *, sender_turn_connections: int = 8) -> None:
        """`sender_turn_connections`: how many pooled connections PostgreSQL sender turns
        may hold at once; keep it below the pool's capacity so reads and writes always
        find a connection."""
        self._db = Db(engine)
        self.sender_turns = SenderTurns(engine, max_connections=sender_turn_connections)

    @property
    def engine(self) -> Engine:
        return self._db.engine

    # -- users and identity ------------------------------------------------------------

    def create_user(
        self, *, user_id: str, username: str, password_hash: str, role: Role, now: datetime
    ) -> User:
        return users.create_user(
            self._db,
            user_id=user_id,
            username=username,
            password_hash=password_hash,
            role=role,
            now=now,
        )

    def ensure_admin(
        self, *, user_id: str, username: str, password_hash: str, now: datetime
    ) -> User:
        return users.ensure_admin(
            self._db, user_id=user_id, username=username, password_hash=password_hash, now=now
        )

    def get_user(self, user_id: str) -> User | None:
        return users.get_user(self._db, user_id)

    def get_user_by_username(self, username: str) -> User | None:
        return users.get_user_by_username(self._db, username)

    def change_password(
        self, *, user_id: str, password_hash: str, expected_version: int
    ) -> int | None:
        return users.change_password(
            self._db,
            user_id=user_id,
            password_hash=password_hash,
            expected_version=expected_version,
        )

    def revoke_tokens(self, *, user_id: str) -> int:
        return users.revoke_tokens(self._db, user_id=user_id)

    def set_role(self, *, user_id: str, role: Role) -> User:
        return users.set_role(self._db, user_id=user_id, role=role)

    def reset_admin(self, *, user_id: str, password_hash: str) -> User:
        return users.reset_admin(self._db, user_id=user_id, password_hash=password_hash)

    def soft_delete_user(self, *, user_id: str, now: datetime, require_zero_balances: bool) -> User:
        return users.soft_delete_user(
            self._db, user_id=user_id, now=now, require_zero_balances=require_zero_balances
        )

    def freeze_user(self, *, user_id: str, frozen_by: str, reason: str, now: datetime) -> User:
        return users.freeze_user(
            self._db, user_id=user_id, frozen_by=frozen_by, reason=reason, now=now
        )

    def unfreeze_user(self, *, user_id: str) -> User:
        return users.unfreeze_user(self._db, user_id=user_id)

    # -- balances and the movement path ------------------------------------------------

    def balance(self, *, user_id: str, currency: str) -> int:
        return balances.balance(self._db, user_id=user_id, currency=currency)

    def balances(self, *, user_id: str) -> list[tuple[str, int]]:
        return balances.balances(self._db, user_id=user_id)

    def find_by_idempotency_key(self, *, initiated_by: str, key: str) -> Transaction | None:
        return transactions.find_by_idempotency_key(self._db, initiated_by=initiated_by, key=key)

    def sender_turn(self, user_id: str) -> AbstractContextManager[None]:
        return self.sender_turns.turn(user_id)

    def movement_features(
        self, *, user_id: str, currency: str, debit_user_id: str | None, now: datetime
    ) -> MovementFeatures:
        return balances.movement_features(
            self._db, user_id=user_id, currency=currency, debit_user_id=debit_user_id, now=now
        )

    def apply_movements(self, plans: Sequence[MovementPlan]) -> list[MovementResult]:
        return movements.apply_movements(self._db, plans)

    # -- transactions --------------------------------------------------------------------

    def get_transaction(self, tx_id: str) -> Transaction | None:
        return transactions.get_transaction(self._db, tx_id)

    def list_transactions(self, query: TransactionQuery) -> list[Transaction]:
        return transactions.list_transactions(self._db, query)

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
        return transactions.review_transaction(
            self._db,
            tx_id=tx_id,
            resolution=resolution,
            reviewer_id=reviewer_id,
            note=note,
            now=now,
            freeze_reason=freeze_reason,
        )

    def soft_delete_transaction(self, *, tx_id: str, now: datetime) -> Transaction:
        return transactions.soft_delete_transaction(self._db, tx_id=tx_id, now=now)

    # -- audit ---------------------------------------------------------------------------

    def ledger_violations(self) -> list[str]:
        return audit.ledger_violations(self._db)
