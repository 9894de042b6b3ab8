"""The login lockout in the database: one row per lockout key, shared by every replica.

`reserve` is a single INSERT ... ON CONFLICT DO UPDATE ... RETURNING (SQLite 3.35+ and
PostgreSQL): the row lock (PostgreSQL) or the write lock (SQLite, BEGIN IMMEDIATE) makes
concurrent reservations of one key see each other's increments, so exactly
`max_failures` of a burst are let through to the password check.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from wallet_service.errors import Unavailable
from wallet_service.schema import login_attempts

_PRUNE_EVERY = 1000  # reservations between sweeps of expired rows (per process)


class SqlLoginAttempts:
    """A fixed lockout window per key: it starts at the first attempt and lasts
    `window_seconds`; attempts beyond `max_failures` inside it are refused."""

    def __init__(self, engine: Engine, *, max_failures: int, window_seconds: int) -> None:
        self._engine = engine
        self._max = max_failures
        self._window_ms = window_seconds * 1000
        self._insert: Callable[..., Any] = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )
        self._reservations = 0

    def reserve(self, key: str, *, now: datetime) -> float | None:
        now_ms = int(now.timestamp() * 1000)
        statement = self._upsert(key, now_ms)
        try:
            with self._engine.begin() as conn:
                row = conn.execute(statement).one()
                attempts, started_ms = int(row.attempts), int(row.window_started_ms)
                self._maybe_prune(conn, now_ms)
        except DBAPIError as exc:
            raise _unavailable() from exc
        if attempts <= self._max:
            return None
        return max(0.0, (started_ms + self._window_ms - now_ms) / 1000.0)

    def clear(self, key: str) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(login_attempts).where(login_attempts.c.lockout_key == key))
        except DBAPIError as exc:
            raise _unavailable() from exc

    def _upsert(self, key: str, now_ms: int) -> Any:
        table = login_attempts
        expired = table.c.window_started_ms <= now_ms - self._window_ms
        insert = self._insert(table).values(lockout_key=key, attempts=1, window_started_ms=now_ms)
        return insert.on_conflict_do_update(
            index_elements=[table.c.lockout_key],
            set_={
                "attempts": case((expired, 1), else_=table.c.attempts + 1),
                "window_started_ms": case((expired, now_ms), else_=table.c.window_started_ms),
            },
        ).returning(table.c.attempts, table.c.window_started_ms)

    def _maybe_prune(self, conn: Any, now_ms: int) -> None:
        """Rows of names nobody tries any more (typos, unknown names) are dropped now and then."""
        self._reservations += 1
        if self._reservations % _PRUNE_EVERY == 0:
            cutoff = now_ms - self._window_ms
            conn.execute(delete(login_attempts).where(login_attempts.c.window_started_ms <= cutoff))


def _unavailable() -> Unavailable:
    return Unavailable("storage_unavailable", "The database is unavailable; retry later")
