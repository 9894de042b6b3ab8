"""The fraud store: rule set versions, the live pointer and the block/allow lists.

SQLAlchemy Core over SQLite or PostgreSQL. Contract of each call below; writes are one
transaction each and bump `fraud_state.generation`, which is what every replica reads
(one primary-key row, `GenerationProbe`) before each score to know whether its cached
snapshot is stale.

Exactly one live rule set: a partial unique index (at most one 'live' row) and the
singleton `fraud_state` row pointing at it (NOT NULL foreign key). Activation first locks
that row (PostgreSQL `FOR UPDATE`; SQLite writers hold the database lock from BEGIN
IMMEDIATE), so concurrent activations on any number of replicas run one after another.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from fraud_service.database import READ_ONLY_OPTION
from fraud_service.schema import list_entries, rule_sets, snoozes, state
from fraud_service.store_contract import (
    ListEntryNotFound,
    ListEntryRecord,
    LiveSnapshot,
    RuleSetNotFound,
    RuleSetRecord,
    SnoozeRecord,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _rule_set(row: Any) -> RuleSetRecord:
    return RuleSetRecord(
        version=row.version,
        status=row.status,
        document=json.loads(row.document),
        description=row.description,
        created_by=row.created_by,
        created_at=_utc(row.created_at) or _now(),
        activated_by=row.activated_by,
        activated_at=_utc(row.activated_at),
    )


def _snooze(row: Any) -> SnoozeRecord:
    return SnoozeRecord(
        username=row.username,
        rule_id=row.rule_id,
        until=_utc(row.until) or _now(),
        transaction_id=row.transaction_id,
        note=row.note,
        created_by=row.created_by,
        created_at=_utc(row.created_at) or _now(),
    )


def _entry(row: Any) -> ListEntryRecord:
    return ListEntryRecord(
        list_name=row.list_name,
        username=row.username,
        rules=tuple(json.loads(row.rules)),
        note=row.note,
        created_by=row.created_by,
        created_at=_utc(row.created_at) or _now(),
    )


class GenerationProbe:
    """The one statement every score runs, kept as cheap as a database read can be: SQL
    compiled once, on one DBAPI connection held open outside the pool (no checkout, no
    SQLAlchemy execution per call), in autocommit, so each read is its own statement and
    sees every transaction committed before it started. Calls are serialised on the one
    connection (a primary-key read: microseconds on SQLite, one round trip on
    PostgreSQL). A lost connection (a database restart) is replaced once per call."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        query = select(state.c.generation).where(state.c.id == 1)
        compiled = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        self._sql = str(compiled)
        self._errors: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._pool = engine.pool.recreate()
        self._lock = threading.Lock()
        self._connection: Any = None

    def read(self) -> int | None:
        with self._lock:
            try:
                return self._read()
            except self._errors:
                self._close()
                return self._read()

    def close(self) -> None:
        with self._lock:
            self._close()
        self._pool.dispose()

    def _read(self) -> int | None:
        if self._connection is None:
            self._connection = self._open()
        cursor = self._connection.cursor()
        try:
            cursor.execute(self._sql)
            rows = cursor.fetchall()  # to the end: no statement (or read) left open
        finally:
            cursor.close()
        return int(rows[0][0]) if rows else None

    def _open(self) -> Any:
        # A new connection made as the engine makes them (its connect events: the SQLite
        # pragmas), from a pool of its own that never holds one: the engine's pool could
        # hand back a connection that died with the one being replaced.
        proxied = self._pool.connect()
        proxied.detach()
        connection = proxied.dbapi_connection
        assert connection is not None  # a fresh checkout always holds one
        self._engine.dialect.set_isolation_level(connection, "AUTOCOMMIT")
        return connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(self._errors):  # already gone
                connection.close()


class FraudStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = engine.execution_options(**{READ_ONLY_OPTION: True})
        self._generation = GenerationProbe(engine)

    def dispose(self) -> None:
        self._generation.close()
        self.engine.dispose()

    # --- reads ---

    def generation(self) -> int | None:
        """The current generation (None before the seed); one primary-key read, no lock,
        on the probe's own connection (GenerationProbe)."""
        return self._generation.read()

    def live_snapshot(self) -> LiveSnapshot | None:
        """The live rule set and every list entry, read in one transaction; None before
        the seed."""
        with self._reader.begin() as conn:
            row = conn.execute(select(state).where(state.c.id == 1)).one_or_none()
            if row is None:
                return None
            live = conn.execute(
                select(rule_sets).where(rule_sets.c.version == row.live_version)
            ).one()
            entries = conn.execute(select(list_entries)).all()
            # Expired ones cost nothing at score time (compared with the movement's time)
            # and are pruned from the snapshot here.
            active = conn.execute(select(snoozes).where(snoozes.c.until > _now())).all()
        return LiveSnapshot(
            generation=row.generation,
            rule_set=_rule_set(live),
            entries=tuple(_entry(entry) for entry in entries),
            snoozes=tuple(_snooze(snooze) for snooze in active),
        )

    def list_rule_sets(self) -> list[RuleSetRecord]:
        """Every version, newest first."""
        with self._reader.connect() as conn:
            rows = conn.execute(select(rule_sets).order_by(rule_sets.c.version.desc())).all()
        return [_rule_set(row) for row in rows]

    def get_rule_set(self, *, version: int) -> RuleSetRecord | None:
        with self._reader.connect() as conn:
            row = conn.execute(
                select(rule_sets).where(rule_sets.c.version == version)
            ).one_or_none()
        return _rule_set(row) if row is not None else None

    def list_entries(self, *, list_name: str | None = None) -> list[ListEntryRecord]:
        query = select(list_entries).order_by(list_entries.c.list_name, list_entries.c.username)
        if list_name is not None:
            query = query.where(list_entries.c.list_name == list_name)
        with self._reader.connect() as conn:
            return [_entry(row) for row in conn.execute(query).all()]

    def list_snoozes(
        self, *, username: str | None, active_at: datetime | None
    ) -> list[SnoozeRecord]:
        """Snoozes of `username` (all users if None), only those running at `active_at`
        unless it is None; by user, then rule."""
        query = select(snoozes).order_by(snoozes.c.username, snoozes.c.rule_id)
        if username is not None:
            query = query.where(snoozes.c.username == username)
        if active_at is not None:
            query = query.where(snoozes.c.until > active_at)
        with self._reader.connect() as conn:
            return [_snooze(row) for row in conn.execute(query).all()]

    # --- writes ---

    def snooze(
        self,
        *,
        username: str,
        rule_ids: Sequence[str],
        until: datetime,
        transaction_id: str,
        note: str,
        actor: str,
    ) -> list[SnoozeRecord]:
        """Skip `rule_ids` for `username` until `until`; a rule already snoozed for the user
        gets this snooze instead (the latest review decides). One transaction."""
        keys = [(snoozes.c.username == username) & (snoozes.c.rule_id == r) for r in rule_ids]
        with self.engine.begin() as conn:
            conn.execute(select(state.c.id).where(state.c.id == 1).with_for_update())
            for rule_id, key in zip(rule_ids, keys, strict=True):
                values = {
                    "username": username,
                    "rule_id": rule_id,
                    "until": until,
                    "transaction_id": transaction_id,
                    "note": note,
                    "created_by": actor,
                    "created_at": _now(),
                }
                if conn.execute(update(snoozes).where(key).values(**values)).rowcount == 0:
                    conn.execute(insert(snoozes).values(**values))
            self._bump(conn)
            rows = conn.execute(
                select(snoozes)
                .where(snoozes.c.username == username, snoozes.c.rule_id.in_(list(rule_ids)))
                .order_by(snoozes.c.rule_id)
            ).all()
        return [_snooze(row) for row in rows]

    def seed_if_empty(self, *, document: Mapping[str, Any], description: str) -> bool:
        """Store `document` as version 1, live, when no rule set is live yet. Returns
        whether it did; a replica that loses a start race to another seeds nothing."""
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(state.c.id).where(state.c.id == 1)).first():
                    return False
                version = self._insert_rule_set(
                    conn, document=document, description=description, actor="seed", status="live"
                )
                conn.execute(insert(state).values(id=1, live_version=version, generation=1))
            return True
        except IntegrityError:  # another replica seeded first (PostgreSQL)
            return False

    def create_rule_set(
        self, *, document: Mapping[str, Any], description: str, actor: str
    ) -> RuleSetRecord:
        """A new draft with the next version number (an already validated document)."""
        with self.engine.begin() as conn:
            version = self._insert_rule_set(
                conn, document=document, description=description, actor=actor, status="draft"
            )
            self._bump(conn)
            row = conn.execute(select(rule_sets).where(rule_sets.c.version == version)).one()
        return _rule_set(row)

    def activate(self, *, version: int, actor: str) -> RuleSetRecord:
        """Make `version` live and archive the previous live one, atomically. Activating
        the live version again changes nothing (a retry). Raises RuleSetNotFound."""
        with self.engine.begin() as conn:
            # Serialises activations: PostgreSQL row lock; SQLite already holds the write lock.
            current = conn.execute(
                select(state.c.live_version).where(state.c.id == 1).with_for_update()
            ).scalar_one()
            row = conn.execute(
                select(rule_sets).where(rule_sets.c.version == version)
            ).one_or_none()
            if row is None:
                raise RuleSetNotFound(f"rule set version {version} does not exist")
            if current == version:
                return _rule_set(row)
            conn.execute(
                update(rule_sets).where(rule_sets.c.version == current).values(status="archived")
            )
            conn.execute(
                update(rule_sets)
                .where(rule_sets.c.version == version)
                .values(status="live", activated_by=actor, activated_at=_now())
            )
            conn.execute(update(state).where(state.c.id == 1).values(live_version=version))
            self._bump(conn)
            row = conn.execute(select(rule_sets).where(rule_sets.c.version == version)).one()
        return _rule_set(row)

    def add_list_entry(
        self, *, list_name: str, username: str, rules: Sequence[str], note: str, actor: str
    ) -> ListEntryRecord:
        """Insert or replace the entry of `username` on `list_name`."""
        values = {
            "list_name": list_name,
            "username": username,
            "rules": json.dumps(list(rules)),
            "note": note,
            "created_by": actor,
            "created_at": _now(),
        }
        key = (list_entries.c.list_name == list_name) & (list_entries.c.username == username)
        with self.engine.begin() as conn:
            # Rows of one key are only written under the state row's lock, so no race here.
            conn.execute(select(state.c.id).where(state.c.id == 1).with_for_update())
            if conn.execute(update(list_entries).where(key).values(**values)).rowcount == 0:
                conn.execute(insert(list_entries).values(**values))
            self._bump(conn)
            row = conn.execute(select(list_entries).where(key)).one()
        return _entry(row)

    def remove_list_entry(self, *, list_name: str, username: str) -> None:
        """Raises ListEntryNotFound when there is no such entry."""
        key = (list_entries.c.list_name == list_name) & (list_entries.c.username == username)
        with self.engine.begin() as conn:
            conn.execute(select(state.c.id).where(state.c.id == 1).with_for_update())
            if conn.execute(list_entries.delete().where(key)).rowcount == 0:
                raise ListEntryNotFound(f"{username} is not on the {list_name} list")
            self._bump(conn)

    @staticmethod
    def _insert_rule_set(
        conn: Connection,
        *,
        document: Mapping[str, Any],
        description: str,
        actor: str,
        status: str,
    ) -> int:
        now = _now()
        result = conn.execute(
            insert(rule_sets)
            .values(
                status=status,
                document=json.dumps(document, sort_keys=True),
                description=description,
                created_by=actor,
                created_at=now,
                activated_by=actor if status == "live" else None,
                activated_at=now if status == "live" else None,
            )
            .returning(rule_sets.c.version)
        )
        return int(result.scalar_one())

    @staticmethod
    def _bump(conn: Connection) -> None:
        conn.execute(update(state).where(state.c.id == 1).values(generation=state.c.generation + 1))
