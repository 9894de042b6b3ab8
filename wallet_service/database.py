"""Engines for SQLite and PostgreSQL, and migrations at start.

SQLite: WAL journal, a busy timeout, foreign keys on, and every write transaction
opened with BEGIN IMMEDIATE so writers queue for the lock up front instead of
failing on a lock upgrade half way. PostgreSQL: psycopg 3 with a bounded pool,
READ COMMITTED; migrations run under an advisory lock so replicas can start together.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every replica.
MIGRATION_LOCK_ID = 0x57A11E7
READ_ONLY_OPTION = "wallet_read_only"


def create_db_engine(
    url: str, *, pool_size: int = 10, sqlite_synchronous: str = "FULL", echo: bool = False
) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, pool_size=pool_size, synchronous=sqlite_synchronous, echo=echo)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            # No pre-ping (a round trip per checkout): a connection found dead fails its call
            # with UNAVAILABLE, and SQLAlchemy then invalidates the whole pool.
            pool_recycle=1800,
            echo=echo,
        )
    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)}")


def _sqlite_engine(url: str, *, pool_size: int, synchronous: str, echo: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"timeout": 30, "check_same_thread": False},
        echo=echo,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def alembic_config(engine_url: str, migrations_dir: Path = MIGRATIONS_DIR) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", engine_url.replace("%", "%%"))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to `revision`; safe when several replicas start at once."""
    run_alembic(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    run_alembic(engine, lambda config: command.downgrade(config, revision))


def run_alembic(
    engine: Engine,
    action: Callable[[Config], None],
    *,
    migrations_dir: Path = MIGRATIONS_DIR,
    lock_id: int = MIGRATION_LOCK_ID,
) -> None:
    """`action` on the migrations in `migrations_dir`, on one connection: on PostgreSQL under
    the advisory lock `lock_id` (replicas starting together take turns), on SQLite with
    foreign keys off around it and checked after."""
    config = alembic_config(engine.url.render_as_string(hide_password=False), migrations_dir)
    with engine.connect() as connection:
        is_postgres = engine.dialect.name == "postgresql"
        if is_postgres:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            connection.commit()
        else:
            _sqlite_foreign_keys(connection, enabled=False)
        try:
            config.attributes["connection"] = connection
            action(config)
            connection.commit()
            if not is_postgres:
                _check_sqlite_foreign_keys(connection)
        finally:
            if is_postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                connection.commit()
            else:
                connection.rollback()
                _sqlite_foreign_keys(connection, enabled=True)


def _sqlite_foreign_keys(connection: Connection, *, enabled: bool) -> None:
    """SQLite's own recipe for rebuilding a table (what Alembic's batch mode does): foreign
    keys off around it, or dropping a referenced table fails on its existing rows. The pragma
    is a no-op inside a transaction, so it goes straight to the driver, outside one."""
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    connection.commit()
    if problems:
        raise RuntimeError(f"migration left dangling foreign keys: {problems[:5]}")
