"""Users and identity: registration, the admin bootstrap, credentials, roles, soft
deletion and freezes. Contracts: wallet_service.store_contract.WalletStore."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from wallet_service.errors import AlreadyExists, FailedPrecondition, NotFound
from wallet_service.events import freeze_event
from wallet_service.identity import canonical_username
from wallet_service.models import Role, User
from wallet_service.schema import accounts, users
from wallet_service.store.db import Db, present
from wallet_service.store.outbox import add_events
from wallet_service.store.rows import new_user_row, user_from_row
from wallet_service.store.statements import LIVE_USER_BY_NAME, USER_BY_ID


class UserQueries:
    """Users and identity, over the store's `Db`."""

    _db: Db

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
        user = User(
            id=user_id,
            username=username,
            role=role,
            created_at=now,
            deleted_at=None,
            password_hash=password_hash,
            email=email,
        )
        row = new_user_row(user)
        try:
            self._db.write(lambda conn: conn.execute(insert(users).values(**row)))
        except IntegrityError as exc:
            raise AlreadyExists("username_taken", f"Username {username!r} is taken") from exc
        return user

    def ensure_admin(
        self, *, user_id: str, username: str, password_hash: str, now: datetime
    ) -> User:
        # One INSERT ... ON CONFLICT DO NOTHING: replicas bootstrapping together cannot race,
        # and an existing holder of the name is never changed here (the service decides).
        admin = User(
            id=user_id,
            username=username,
            role=Role.ADMIN,
            created_at=now,
            deleted_at=None,
            password_hash=password_hash,
        )
        row = new_user_row(admin)
        stmt = self._db.insert(users).values(**row).on_conflict_do_nothing()
        self._db.write(lambda conn: conn.execute(stmt))
        with self._db.read() as conn:
            found = conn.execute(
                select(users).where(users.c.username_canonical == row["username_canonical"])
            ).one()
        return user_from_row(found)

    def get_user(self, user_id: str) -> User | None:
        with self._db.read() as conn:
            row = conn.execute(USER_BY_ID, {"user_id": user_id}).one_or_none()
        return user_from_row(row) if row else None

    def get_user_by_username(self, username: str) -> User | None:
        with self._db.read() as conn:
            row = conn.execute(
                LIVE_USER_BY_NAME, {"canonical": canonical_username(username)}
            ).one_or_none()
        return user_from_row(row) if row else None

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
        return present(self.get_user(user_id))

    def reset_admin(self, *, user_id: str, password_hash: str) -> User:
        self._bump_credentials(
            user_id,
            {"password_hash": password_hash, "deleted_at": None},
            users.c.role == Role.ADMIN.value,
            live_only=False,
        )
        return present(self.get_user(user_id))

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
        version = self._db.write(lambda conn: conn.execute(stmt).scalar_one_or_none())
        return int(version) if version is not None else None

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

        self._db.write(work)
        return present(self.get_user(user_id))

    def freeze_user(self, *, user_id: str, frozen_by: str, reason: str, now: datetime) -> User:
        def work(conn: Connection) -> None:
            freeze(conn, user_id, frozen_by, reason, now)
            _require_live_user(conn, user_id)

        self._db.write(work)
        return present(self.get_user(user_id))

    def unfreeze_user(self, *, user_id: str) -> User:
        def work(conn: Connection) -> None:
            conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.deleted_at.is_(None))
                .values(frozen_at=None, frozen_by=None, frozen_reason=None)
            )
            _require_live_user(conn, user_id)

        self._db.write(work)
        return present(self.get_user(user_id))

    def set_user_email(self, *, user_id: str, email: str | None) -> User:
        def work(conn: Connection) -> None:
            conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.deleted_at.is_(None))
                .values(email=email)
            )
            _require_live_user(conn, user_id)

        self._db.write(work)
        return present(self.get_user(user_id))


def freeze(conn: Connection, user_id: Any, frozen_by: str, reason: str, now: datetime) -> None:
    """Freeze the live user `user_id` (a value or a scalar subquery) unless frozen already:
    the first record of who, when and why is the one kept. A new freeze is reported
    (`user.frozen`) by the outbox in the same transaction."""
    frozen_id = conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.deleted_at.is_(None), users.c.frozen_at.is_(None))
        .values(frozen_at=now, frozen_by=frozen_by, frozen_reason=reason)
        .returning(users.c.id)
    ).scalar_one_or_none()
    if frozen_id is not None:
        row = conn.execute(USER_BY_ID, {"user_id": frozen_id}).one()
        add_events(conn, [freeze_event(user_from_row(row))])


def _require_live_user(conn: Connection, user_id: str) -> None:
    live = conn.execute(
        select(users.c.id).where(users.c.id == user_id, users.c.deleted_at.is_(None))
    ).scalar_one_or_none()
    if live is None:
        raise NotFound("user_not_found", "User not found")
