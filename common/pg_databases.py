"""Throwaway PostgreSQL databases for the tests, the bench and the chaos runner: created by
name through the server's maintenance database, dropped WITH (FORCE) so open connections
do not keep one alive. The services never import this."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url


def create_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin_dsn(server_url: str) -> str:
    """The libpq DSN of the maintenance database on the server of SQLAlchemy URL `server_url`."""
    url = make_url(server_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A fresh database `<prefix>_<random>` on the server of SQLAlchemy URL `server_url`:
    yields its SQLAlchemy URL and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    dsn = admin_dsn(server_url)
    create_database(dsn, name)
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(dsn, name)
