"""The fraud store's engine and migrations at start.

The engine is the wallet's (`wallet_service.database.create_db_engine`: SQLite in WAL
mode with BEGIN IMMEDIATE for writers, PostgreSQL with a bounded pool): one definition
of how this project talks to either database. The migrations are the fraud service's own
(`fraud_service/migrations/`, version table `fraud_alembic_version`), run by the wallet's
`run_alembic` under their own PostgreSQL advisory lock so fraud replicas may start together.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Engine

from wallet_service.database import READ_ONLY_OPTION, create_db_engine, run_alembic

__all__ = ["READ_ONLY_OPTION", "create_db_engine", "migrate"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0xF4A0D  # any constant, the same for every fraud replica


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the fraud schema to `revision`; safe when several replicas start at once."""
    run_alembic(
        engine,
        lambda config: command.upgrade(config, revision),
        migrations_dir=MIGRATIONS_DIR,
        lock_id=MIGRATION_LOCK_ID,
    )
