"""Fixtures for the PostgreSQL suite: fresh databases and wallet replicas sharing one.

Every replica is a real wallet gRPC server on a loopback port (port 0), with its own engine
and connection pool, exactly as two processes in production would have.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.support import CreateDatabase, Replicas, start_wallet, wallet_settings


@pytest.fixture
def pg_url(pg_database_factory: CreateDatabase) -> str:
    """A fresh, empty PostgreSQL database (dropped at the end of the session)."""
    return pg_database_factory()


@pytest.fixture
def replicas(pg_url: str, fraud_addr: str) -> Iterator[Replicas]:
    """Two wallet replicas on the same fresh PostgreSQL database, with connected channels."""
    group = Replicas(pg_url, [])
    try:
        for _ in range(2):
            group.wallets.append(start_wallet(wallet_settings(pg_url, fraud_addr), "postgres"))
        for running in group.wallets:
            channel = grpc.insecure_channel(running.addr)
            group.channels.append(channel)
            grpc.channel_ready_future(channel).result(timeout=10)
        yield group
    finally:
        group.stop()
