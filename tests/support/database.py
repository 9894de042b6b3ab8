"""Databases for tests: fresh SQLite files and fresh PostgreSQL databases, and reading what
they hold (row counts, whole-table snapshots, deadlock counters); whether Redis answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from common.pg_databases import create_database, drop_database
from wallet_service.schema import accounts, ledger_entries, outbox_events, transactions, users
from wallet_service.store import SqlStore

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"

CreateDatabase = Callable[[], str]

# Parametrize a test over both stores; [postgres] carries the mark `-m "not postgres"` drops.
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def require_postgres() -> None:
    """Skip the test when PostgreSQL does not answer; fail instead in CI (CI=true)."""
    if not pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but does not answer at {PG_ADMIN_DSN}")
        pytest.skip("PostgreSQL is not running")


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def require_redis() -> None:
    """Skipped locally if Redis is down, a failure in CI (decided when a test asks for it,
    not at import, so CI=true is honoured)."""
    if not redis_available():
        if IN_CI:
            pytest.fail(f"Redis is required in CI but does not answer at {REDIS_URL}")
        pytest.skip("Redis is not running")


class PgDatabases:
    """Creates fresh PostgreSQL databases on demand; `drop_all` removes them."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def __call__(self) -> str:
        require_postgres()
        name = f"wallet_test_{uuid.uuid4().hex[:12]}"
        create_database(PG_ADMIN_DSN, name)
        self.created.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    def drop_all(self) -> None:
        if not self.created:
            return
        for name in self.created:
            drop_database(PG_ADMIN_DSN, name)


def database_url(backend: str, tmp_dir: Path, create_pg_database: CreateDatabase) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir / f'wallet-{uuid.uuid4().hex[:8]}.db'}"
    return create_pg_database()


def libpq_dsn(sqlalchemy_url: str) -> str:
    """The psycopg DSN for a `postgresql+psycopg://` URL."""
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def deadlock_count(sqlalchemy_url: str) -> int:
    """Deadlocks PostgreSQL has detected in that database (backends report on exit)."""
    with psycopg.connect(libpq_dsn(sqlalchemy_url)) as conn:
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def db_snapshot(store: SqlStore) -> dict[str, Any]:
    """Every row of every table that holds state, in a stable order."""
    snapshot: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for table in (users, accounts, transactions, ledger_entries, outbox_events):
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            snapshot[table.name] = [tuple(row) for row in rows]
    return snapshot


class Unchanged:
    """`with unchanged():` asserts that the block changed no row of any state table."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    @contextmanager
    def __call__(self) -> Iterator[None]:
        before = db_snapshot(self.store)
        yield
        after = db_snapshot(self.store)
        for table, rows in before.items():
            assert after[table] == rows, f"table {table} changed by a refused request"


def set_role_in_database(store: SqlStore, user_id: str, role: str) -> None:
    """A direct database edit that bypasses the store (so the credentials version stays):
    the role is still read from the database on every call. `SqlStore.set_role`, what an
    operator's command uses, also revokes the user's tokens."""
    with store.engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(role=role))
