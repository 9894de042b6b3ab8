"""Service accounts: create, read, list, rotate, disable. Contracts:
wallet_service.store_contract.WalletStore."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from wallet_service.errors import AlreadyExists, NotFound
from wallet_service.models import ServiceAccount, as_utc
from wallet_service.schema import service_accounts
from wallet_service.store.db import Db, present


class ServiceAccountQueries:
    """Service accounts, over the store's `Db`."""

    _db: Db

    def create_service_account(self, account: ServiceAccount) -> ServiceAccount:
        row = {
            "id": account.id,
            "name": account.name,
            "scopes": " ".join(sorted(account.scopes)),
            "secret_hash": account.secret_hash,
            "created_at": account.created_at,
            "created_by": account.created_by,
        }
        try:
            self._db.write(lambda conn: conn.execute(insert(service_accounts).values(**row)))
        except IntegrityError as exc:
            raise AlreadyExists(
                "service_account_exists", f"A service account named {account.name!r} exists"
            ) from exc
        return present(self.get_service_account(account.id))

    def get_service_account(self, account_id: str) -> ServiceAccount | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(service_accounts).where(service_accounts.c.id == account_id)
            ).one_or_none()
        return _account(row) if row else None

    def list_service_accounts(self) -> list[ServiceAccount]:
        with self._db.read() as conn:
            rows = conn.execute(select(service_accounts).order_by(service_accounts.c.name)).all()
        return [_account(row) for row in rows]

    def rotate_service_account_secret(
        self, *, account_id: str, secret_hash: str, previous_valid_until: datetime
    ) -> ServiceAccount:
        # One UPDATE: the current hash becomes the previous one in the same statement, so
        # two rotations racing cannot both keep the same old secret alive.
        self._update_live(
            account_id,
            secret_hash=secret_hash,
            previous_secret_hash=service_accounts.c.secret_hash,
            previous_secret_expires_at=previous_valid_until,
        )
        return present(self.get_service_account(account_id))

    def disable_service_account(
        self, *, account_id: str, disabled_by: str, now: datetime
    ) -> ServiceAccount:
        self._update_live(
            account_id,
            disabled_at=now,
            disabled_by=disabled_by,
            credentials_version=service_accounts.c.credentials_version + 1,
        )
        return present(self.get_service_account(account_id))

    def _update_live(self, account_id: str, **values: Any) -> None:
        stmt = (
            update(service_accounts)
            .where(service_accounts.c.id == account_id, service_accounts.c.disabled_at.is_(None))
            .values(**values)
        )
        if self._db.write(lambda conn: conn.execute(stmt).rowcount) == 0:
            raise NotFound("service_account_not_found", "No such enabled service account")


def _account(row: Row[Any]) -> ServiceAccount:
    expires = row.previous_secret_expires_at
    return ServiceAccount(
        id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes.split()),
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        secret_hash=row.secret_hash,
        previous_secret_hash=row.previous_secret_hash,
        previous_secret_expires_at=as_utc(expires) if expires else None,
        credentials_version=int(row.credentials_version),
        disabled_at=as_utc(row.disabled_at) if row.disabled_at else None,
        disabled_by=row.disabled_by,
    )
