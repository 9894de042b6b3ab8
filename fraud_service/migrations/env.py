"""Alembic environment of the fraud store: runs on the connection handed over by
fraud_service.database, with its own version table so it can share a database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from fraud_service.schema import metadata

VERSION_TABLE = "fraud_alembic_version"
config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # invoked from the alembic CLI: build an engine from the URL
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
