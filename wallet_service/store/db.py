"""How the store runs its reads and writes: one engine, the dialect's differences, retries.

Every part of the store (users, balances, transactions, the movement write path, the
audit) runs its SQL through one `Db`, so the transaction rules live in one place.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from wallet_service.database import READ_ONLY_OPTION
from wallet_service.errors import Unavailable

T = TypeVar("T")

MAX_WRITE_ATTEMPTS = 8
# PostgreSQL serialization failure and deadlock: safe to retry the whole transaction.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


def present(value: T | None) -> T:
    """What a write just changed, read back: it exists (deletion is soft)."""
    assert value is not None
    return value


def storage_unavailable() -> Unavailable:
    return Unavailable(
        "storage_unavailable", "The database is unavailable; retry (with the same idempotency key)"
    )


class Db:
    """The engine with the store's two ways of using it: `read()` and `write(work)`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read; on PostgreSQL in autocommit (no BEGIN/COMMIT round trips: each read
        method is one statement or does not need a snapshot across its statements)."""
        try:
            with self.engine.connect() as conn:
                if self.is_postgres:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                else:
                    conn = conn.execution_options(**{READ_ONLY_OPTION: True})
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise storage_unavailable() from exc

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction, retrying transient conflicts a bounded
        number of times (PostgreSQL deadlock/serialization, SQLite busy)."""
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except OperationalError as exc:
                if not self._is_transient(exc):
                    # Connection lost or database down: the client may retry, safely so with
                    # its idempotency key (even when the commit's fate is unknown).
                    raise storage_unavailable() from exc
                if attempt == MAX_WRITE_ATTEMPTS:
                    raise
            time.sleep(random.uniform(0, 0.005 * 2**attempt))  # jittered backoff
        raise AssertionError("unreachable")

    def insert(self, table: Table) -> Any:
        """INSERT with ON CONFLICT support, in this database's dialect."""
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    def _is_transient(self, exc: DBAPIError) -> bool:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _RETRYABLE_SQLSTATES:
            return True
        return "database is locked" in str(exc.orig)
