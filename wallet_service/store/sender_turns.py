"""One sender's movements are scored and committed one at a time, across every replica
(`SqlStore.sender_turn`, contract: `WalletStore.sender_turn`).

Why: the fraud features (counts and sums over the last hour and day) are read from the
ledger. If two movements of one sender are scored at the same moment, neither sees the
other, so a burst of 14 transfers sent at once scored as 14 first movements and slipped
past velocity and structuring. A movement must be scored with every earlier movement of
its sender counted, committed or merely decided.

Design: a *sender turn* is held from the feature read, through the fraud call, until the
movement has committed (or been refused). Whoever holds user U's turn is the only movement
of U anywhere that is between "features read" and "committed", so the features it reads
contain every earlier movement of U: a burst scores exactly like the same movements sent
one after another. Movements of DIFFERENT senders never share a turn, so they still score
in parallel and still share group commits; only one sender's own movements queue.

The turn has up to three layers, always taken in this order and released in reverse:

1. an in-process lock per user id (threads of one process queue here, holding nothing
   else, so a burst costs no database connections);
2. PostgreSQL only: a slot of a semaphore that bounds how many pooled connections turns
   may hold, leaving a reserve for the feature reads, the writer and other calls;
3. PostgreSQL only: a session-level advisory lock `pg_advisory_lock(NAMESPACE,
   hashtext(user_id))` on a pooled connection in autocommit, so replicas sharing the
   database serialise the same sender too (first tried without waiting: an uncontended
   turn costs one statement to take and one to release). It holds no row lock and no open
   transaction. A hash collision only makes two senders queue on each other.

SQLite needs no database layer: a SQLite database is served by one wallet process (the
replicas the README promises share PostgreSQL), and its writes are serialised anyway.

Deadlock freedom: a thread holds at most one turn, takes its layers in a fixed order, and
the holder of a complete turn waits only on things that never wait for a turn (the fraud
call with its own deadline, pooled connections from the reserve, the database row locks
of the writer). Waiting for a turn is bounded (`wait_seconds`); past it the call is
refused with UNAVAILABLE `sender_busy`, nothing moved, safe to retry with its key.

The fraud deadline is unchanged: it bounds the Score call itself, after the turn is held.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from wallet_service.errors import Unavailable

# First key of the two-int advisory lock space, "wallet sender"; the migration lock uses the
# one-bigint space, which never conflicts with two-int keys.
ADVISORY_NAMESPACE = 0x5E11D
DEFAULT_WAIT_SECONDS = 30.0


def _busy() -> Unavailable:
    return Unavailable(
        "sender_busy",
        "Too many movements of this user are in progress; nothing was moved, retry later",
    )


class _KeyedLocks:
    """A lock per key that exists only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self.contended = 0  # turns that had to wait for another of the same key (an event count)

    @contextmanager
    def hold(self, key: str, wait_seconds: float) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            if not lock.acquire(blocking=False):
                with self._guard:
                    self.contended += 1
                if not lock.acquire(timeout=wait_seconds):
                    raise _busy()
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class SenderTurns:
    """`turn(user_id)`: the context in which one movement of that user is scored and
    committed. See the module docstring for what it guarantees and why."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_connections: int,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ) -> None:
        self._engine = engine
        self._is_postgres = engine.dialect.name == "postgresql"
        self._local = _KeyedLocks()
        self._connections = threading.BoundedSemaphore(max(1, max_connections))
        self._wait = wait_seconds

    @property
    def contended(self) -> int:
        """How many turns of this process found another turn of the same user held."""
        return self._local.contended

    @contextmanager
    def turn(self, user_id: str) -> Iterator[None]:
        with self._local.hold(user_id, self._wait):
            if not self._is_postgres:
                yield
                return
            if not self._connections.acquire(timeout=self._wait):
                raise _busy()
            try:
                with self._advisory_lock(user_id):
                    yield
            finally:
                self._connections.release()

    @contextmanager
    def _advisory_lock(self, user_id: str) -> Iterator[None]:
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except DBAPIError as exc:
            raise Unavailable("storage_unavailable", "The database is unavailable") from exc
        try:
            timed = self._lock(conn, user_id)
            try:
                yield
            finally:
                self._unlock(conn, user_id, timed)
        finally:
            conn.close()

    def _lock(self, conn: Connection, user_id: str) -> bool:
        """Take the advisory lock; True when `lock_timeout` was set on the session for it
        (to be reset). The uncontended turn is one statement (`pg_try_advisory_lock`);
        only a turn another replica holds waits, bounded by lock_timeout."""
        params = {"ns": ADVISORY_NAMESPACE, "user_id": user_id}
        try:
            if conn.execute(_TRY_LOCK, params).scalar_one():
                return False
            # lock_timeout bounds the wait (it applies to advisory locks too); session-level,
            # so it is reset when the lock is released.
            conn.execute(_SET_LOCK_TIMEOUT, {"ms": f"{int(self._wait * 1000)}ms"})
            conn.execute(_LOCK, params)
        except DBAPIError as exc:
            conn.invalidate()  # whatever state the session is in, it must not be reused
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                raise _busy() from exc
            raise Unavailable("storage_unavailable", "The database is unavailable") from exc
        return True

    def _unlock(self, conn: Connection, user_id: str, timed: bool) -> None:
        params = {"ns": ADVISORY_NAMESPACE, "user_id": user_id}
        try:
            conn.execute(_UNLOCK, params)
            if timed:
                conn.execute(_RESET_LOCK_TIMEOUT)
        except DBAPIError:
            # A connection still holding the lock must never go back to the pool; closing
            # the session releases it on the server.
            conn.invalidate()


_TRY_LOCK = text("SELECT pg_try_advisory_lock(:ns, hashtext(:user_id))")
_SET_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :ms, false)")
_LOCK = text("SELECT pg_advisory_lock(:ns, hashtext(:user_id))")
_UNLOCK = text("SELECT pg_advisory_unlock(:ns, hashtext(:user_id))")
_RESET_LOCK_TIMEOUT = text("RESET lock_timeout")
