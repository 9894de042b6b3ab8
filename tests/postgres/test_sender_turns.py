"""Sender turns across replicas on PostgreSQL: two `SenderTurns` with their own engines (two
processes in production) on one database. The uncontended turn takes the advisory lock
without waiting; a turn another replica holds is waited for, bounded by lock_timeout, and
the session's lock_timeout is back to the server default when the connection is pooled
again."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from common.processes import wait_for
from tests.support import CreateDatabase
from wallet_service.database import create_db_engine
from wallet_service.errors import Unavailable
from wallet_service.store.sender_turns import SenderTurns

pytestmark = pytest.mark.postgres

HANG_GUARD = 30.0


@pytest.fixture
def engines(pg_database_factory: CreateDatabase) -> Iterator[tuple[Engine, Engine]]:
    url = pg_database_factory()
    pair = (create_db_engine(url, pool_size=1), create_db_engine(url, pool_size=1))
    yield pair
    for engine in pair:
        engine.dispose()


def lock_timeouts(engine: Engine) -> list[str]:
    """lock_timeout of every session the pool holds (pool_size 1: one, checked out here)."""
    with engine.connect() as conn:
        return [str(conn.execute(text("SHOW lock_timeout")).scalar_one())]


def test_a_turn_held_by_another_replica_is_refused_after_the_wait(
    engines: tuple[Engine, Engine],
) -> None:
    first = SenderTurns(engines[0], max_connections=1)
    second = SenderTurns(engines[1], max_connections=1, wait_seconds=0.2)
    with first.turn("alice"):
        with pytest.raises(Unavailable) as refused, second.turn("alice"):
            pytest.fail("two replicas held one sender's turn")
        assert refused.value.code == "sender_busy"
        with second.turn("bob"):  # another sender is not held up
            pass
    with second.turn("alice"):  # released: the other replica takes it
        pass
    assert lock_timeouts(engines[1]) == ["0"]


def test_a_waiting_replica_gets_the_turn_when_it_is_released(
    engines: tuple[Engine, Engine],
) -> None:
    first = SenderTurns(engines[0], max_connections=1)
    second = SenderTurns(engines[1], max_connections=1, wait_seconds=HANG_GUARD)
    order: list[str] = []
    held, waiting = threading.Event(), threading.Event()

    def wait_for_turn() -> None:
        assert held.wait(HANG_GUARD)
        waiting.set()
        with second.turn("alice"):
            order.append("second")

    thread = threading.Thread(target=wait_for_turn)
    thread.start()
    with first.turn("alice"):
        held.set()
        assert waiting.wait(HANG_GUARD)
        with engines[0].connect() as probe:  # the second replica is blocked on the lock
            blocked = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            assert wait_for(lambda: probe.execute(text(blocked)).scalar_one() == 1, HANG_GUARD)
        order.append("first")
    thread.join(HANG_GUARD)
    assert order == ["first", "second"]
    assert lock_timeouts(engines[1]) == ["0"]
