"""The delivery worker inside real wallet processes: a wallet killed (kill -9) while it
holds an event's lease still gets the event delivered once restarted and the lease ran
out (no loss; at least once, with the same Webhook-Id), and two wallet replicas on one
PostgreSQL, both running workers, deliver each event exactly once. Assertions count
events; the timeouts are hang guards only."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from common.processes import wait_for
from tests.support import CreateDatabase, SpawnService
from tests.support.notify import (
    WebhookReceiver,
    event_ids_of,
    flagged_deposits,
    outbox_row,
    start_notifying_wallet,
    store_events,
)
from wallet_service.database import create_db_engine, migrate
from wallet_service.events import OutboxStatus
from wallet_service.models import utc_now
from wallet_service.store import SqlStore

HANG_GUARD = 120.0


def test_an_event_claimed_by_a_killed_wallet_is_delivered_after_its_restart(
    spawn: SpawnService, fresh_store: SqlStore, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.hold_first = True  # the first delivery never gets its answer
    url = fresh_store.engine.url.render_as_string(hide_password=False)
    wallet = start_notifying_wallet(spawn, url, receiver, tmp_path, NOTIFY_LEASE_SECONDS="2")
    [tx_id] = flagged_deposits(wallet.address, 1)
    assert receiver.holding.wait(HANG_GUARD)
    wallet.kill9()  # mid-delivery: sent, not yet recorded
    [event_id] = event_ids_of(fresh_store, [tx_id])
    claimed = outbox_row(fresh_store, event_id)
    assert claimed["status"] == "pending" and claimed["lease_owner"] and claimed["attempts"] == 1
    wallet.start()
    wallet.wait_grpc_serving(wallet.address, timeout=HANG_GUARD)
    assert wait_for(lambda: len(receiver.got) >= 2, HANG_GUARD)
    assert wait_for(lambda: outbox_row(fresh_store, event_id)["status"] == "sent", HANG_GUARD), (
        outbox_row(fresh_store, event_id)
    )
    assert receiver.ids() == [event_id, event_id]  # at least once, de-duplicable
    settled = outbox_row(fresh_store, event_id)
    assert settled["attempts"] == 2 and settled["lease_owner"] is None


@pytest.mark.postgres
def test_two_replicas_deliver_each_event_exactly_once(
    spawn: SpawnService,
    pg_database_factory: CreateDatabase,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    url = pg_database_factory()
    engine = create_db_engine(url, pool_size=2)
    migrate(engine)
    store = SqlStore(engine)
    try:
        replicas = [start_notifying_wallet(spawn, url, receiver, tmp_path) for _ in range(2)]
        # Real movements through each replica, and a burst due at once that both workers
        # race for.
        tx_ids = [tx for r in replicas for tx in flagged_deposits(r.address, 5)]
        expected = event_ids_of(store, tx_ids)
        expected += [e.id for e in store_events(store, 40, utc_now())]
        assert len(expected) == 50
        assert wait_for(
            lambda: store.outbox_counts()[OutboxStatus.SENT] == len(expected), HANG_GUARD
        ), store.outbox_counts()
        for replica in replicas:  # a stopped worker sends nothing more
            assert replica.terminate() == 0
        deliveries = Counter(receiver.ids())
        assert set(deliveries) == set(expected)
        assert [i for i, n in deliveries.items() if n != 1] == []
    finally:
        engine.dispose()
