"""The fraud store's engine and migrations at start.

The engine is the wallet's (`wallet_service.database.create_db_engine`: SQLite in WAL
mode with BEGIN IMMEDIATE for writers, PostgreSQL with a bounded pool): one definition
of how this project talks to either database. The migrations are the fraud service's own
(`fraud_service/migrations/`, version table `fraud_alembic_version`), run under their own
PostgreSQL advisory lock so fraud replicas may start together.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from wallet_service.database import READ_ONLY_OPTION, create_db_engine

__all__ = ["READ_ONLY_OPTION", "create_db_engine", "migrate"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0xF4A0D  # any constant, the same for every fraud replica


def alembic_config(engine_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine_url.replace("%", "%%"))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the fraud schema to `revision`; safe when several replicas start at once."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    is_postgres = engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        if is_postgres:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
        finally:
            if is_postgres:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
                connection.commit()
            else:
                connection.rollback()
