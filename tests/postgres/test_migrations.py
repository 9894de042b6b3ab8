"""Alembic migrations on SQLite and PostgreSQL: an empty database reaches head, every step
downgrades and upgrades again, and the result is exactly wallet_service/schema.py."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Engine, inspect, text

from wallet_service.database import alembic_config, create_db_engine, downgrade, migrate
from wallet_service.identity import UsernameCollisionError
from wallet_service.schema import metadata

SCHEMA_TABLES = set(metadata.tables)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database_factory: Callable[[], str]
) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'wallet.db'}"
        if request.param == "sqlite"
        else pg_database_factory()
    )
    engine = create_db_engine(url, pool_size=2)
    yield engine
    engine.dispose()


def revisions_base_to_head(engine: Engine) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


Snapshot = dict[str, tuple[Any, ...]]

_CASTS = re.compile(r"::(text\[\]|character varying|text)")
_ANY_ARRAY = re.compile(r"(\w+) = ANY \(ARRAY\[(.*?)\]\)")


def normalise_check(sql: str) -> str:
    """One spelling for a CHECK's text: PostgreSQL's (casts, `= ANY (ARRAY[...])`) and
    SQLite's (the text as written) both become schema.py's, minus parentheses and spaces."""
    sql = _ANY_ARRAY.sub(r"\1 IN (\2)", _CASTS.sub("", sql))
    return re.sub(r"[()\s]", "", sql).lower()


def check_constraints(engine: Engine) -> dict[str, set[tuple[str, str]]]:
    """Per table, the CHECK constraints as (name, normalised text)."""
    inspector = inspect(engine)
    return {
        table: {
            (c["name"] or "", normalise_check(c["sqltext"]))
            for c in inspector.get_check_constraints(table)
        }
        for table in tables(engine)
    }


def schema_check_constraints() -> dict[str, set[tuple[str, str]]]:
    return {
        name: {
            (str(c.name), normalise_check(str(c.sqltext)))
            for c in table.constraints
            if isinstance(c, CheckConstraint)
        }
        for name, table in metadata.tables.items()
    }


def snapshot(engine: Engine) -> Snapshot:
    """Tables with their columns, indexes, unique and foreign keys and CHECK constraints, as
    the database reports them."""
    inspector = inspect(engine)
    return {
        table: (
            sorted(
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ),
            sorted(
                (i["name"] or "", tuple(i["column_names"])) for i in inspector.get_indexes(table)
            ),
            sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
            sorted(check_constraints(engine)[table]),
        )
        for table in tables(engine)
    }


def schema_diff(engine: Engine) -> list[Any]:
    """What autogenerate would still emit: empty when the database matches schema.py."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def test_empty_database_migrates_to_head_and_matches_schema(empty_engine: Engine) -> None:
    revisions = revisions_base_to_head(empty_engine)
    assert len(revisions) >= 1
    assert tables(empty_engine) == set()
    assert current_revision(empty_engine) is None

    migrate(empty_engine)

    assert current_revision(empty_engine) == revisions[-1]
    assert tables(empty_engine) == SCHEMA_TABLES
    assert schema_diff(empty_engine) == []
    # autogenerate ignores CHECK constraints: compare them by name and text.
    assert check_constraints(empty_engine) == schema_check_constraints()
    migrate(empty_engine)  # a second start is a no-op
    assert current_revision(empty_engine) == revisions[-1]


def test_every_step_downgrades_and_upgrades_again(empty_engine: Engine) -> None:
    revisions = revisions_base_to_head(empty_engine)
    migrate(empty_engine)

    # Down one step at a time: each step changes the schema and the revision follows.
    snapshots: dict[str, Snapshot] = {revisions[-1]: snapshot(empty_engine)}
    for index in range(len(revisions) - 1, -1, -1):
        target = revisions[index - 1] if index > 0 else "base"
        downgrade(empty_engine, target)
        assert current_revision(empty_engine) == (None if target == "base" else target)
        snapshots[target] = snapshot(empty_engine)
        assert snapshots[target] != snapshots[revisions[index]], (
            f"downgrade of {revisions[index]} changed nothing"
        )
    assert tables(empty_engine) == set()

    # Up one step at a time: each revision rebuilds exactly the schema it had on the way down.
    for revision in revisions:
        migrate(empty_engine, revision)
        assert current_revision(empty_engine) == revision
        assert snapshot(empty_engine) == snapshots[revision], f"upgrade to {revision}"
    assert schema_diff(empty_engine) == []
    assert check_constraints(empty_engine) == schema_check_constraints()

    # The full cycle again, in one go each way.
    downgrade(empty_engine, "base")
    assert tables(empty_engine) == set()
    migrate(empty_engine)
    assert schema_diff(empty_engine) == []


def test_alembic_cli_path_migrates_without_a_handed_over_connection(
    empty_engine: Engine,
) -> None:
    """`alembic upgrade head` (env.py building its own engine from the URL) works too."""
    config = alembic_config(empty_engine.url.render_as_string(hide_password=False))
    command.upgrade(config, "head")
    assert tables(empty_engine) == SCHEMA_TABLES
    assert schema_diff(empty_engine) == []
    assert check_constraints(empty_engine) == schema_check_constraints()
    command.downgrade(config, "base")
    assert tables(empty_engine) == set()


# -- 0006: the canonical username column on a database that already holds users --------------


def _seed_users_at_0005(engine: Engine, names: list[str]) -> None:
    """Users as the schema before 0006 held them, each with an account referencing it."""
    migrate(engine, "0005")
    with engine.begin() as conn:
        for number, name in enumerate(names):
            user_id = f"00000000-0000-7000-8000-{number:012d}"
            conn.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, role, created_at) "
                    "VALUES (:id, :name, 'x', 'user', CURRENT_TIMESTAMP)"
                ),
                {"id": user_id, "name": name},
            )
            conn.execute(
                text(
                    "INSERT INTO accounts (owner_user_id, currency, kind, balance_minor, "
                    "created_at) VALUES (:id, 'USD', 'user', 0, CURRENT_TIMESTAMP)"
                ),
                {"id": user_id},
            )


def _users(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM users ORDER BY id")).all()]


def test_0006_backfills_canonical_names_and_keeps_every_reference(empty_engine: Engine) -> None:
    _seed_users_at_0005(empty_engine, ["Alice", "bob", "\uff23arol", "Stra\u00dfe"])
    migrate(empty_engine)
    with empty_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT username, username_canonical, credentials_version FROM users ORDER BY id")
        ).all()
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM accounts a LEFT JOIN users u ON u.id = a.owner_user_id "
                "WHERE u.id IS NULL"
            )
        ).scalar_one()
        if empty_engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    assert [tuple(r) for r in rows] == [
        ("Alice", "alice", 0),
        ("bob", "bob", 0),
        ("\uff23arol", "carol", 0),
        ("Stra\u00dfe", "strasse", 0),
    ]
    assert orphans == 0
    assert schema_diff(empty_engine) == []


def test_0006_stops_on_names_that_are_one_identity_and_changes_nothing(
    empty_engine: Engine,
) -> None:
    _seed_users_at_0005(empty_engine, ["bob", "Bob", "dave", "\uff24AVE", "erin"])
    before = _users(empty_engine)
    with pytest.raises(UsernameCollisionError) as info:
        migrate(empty_engine)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    for name in ("'bob'", "'Bob'", "'dave'", "'\uff24AVE'"):
        assert name in message
    assert "erin" not in message
    assert current_revision(empty_engine) == "0005"
    assert _users(empty_engine) == before  # nothing merged, no column added
    assert "username_canonical" not in {
        c["name"] for c in inspect(empty_engine).get_columns("users")
    }


def test_the_no_overdraft_check_is_seen_by_the_snapshot() -> None:
    """The comparison above would catch a migration that dropped or weakened it."""
    accounts = schema_check_constraints()["accounts"]
    assert ("ck_accounts_no_overdraft", "kind<>'user'orbalance_minor>=0") in accounts
    postgres_spelling = "kind::text <> 'user'::text OR balance_minor >= 0"
    assert normalise_check(postgres_spelling) == "kind<>'user'orbalance_minor>=0"
