"""Fixtures for the PostgreSQL suite: fresh databases and wallet replicas sharing one.

Every replica is a real wallet gRPC server on a loopback port (port 0), with its own engine
and connection pool, exactly as two processes in production would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import psycopg
import pytest
from sqlalchemy.engine import make_url
from wallet.v1 import wallet_pb2_grpc

from tests.conftest import RunningWallet, start_wallet, wallet_settings


@dataclass
class Replicas:
    """Wallet replicas on one database, and a stub to each."""

    url: str
    wallets: list[RunningWallet]
    channels: list[grpc.Channel] = field(default_factory=list)
    stopped: bool = False

    @property
    def stubs(self) -> list[wallet_pb2_grpc.WalletServiceStub]:
        return [wallet_pb2_grpc.WalletServiceStub(c) for c in self.channels]

    def stop(self) -> None:
        """Stop every replica and close its pool (idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        for channel in self.channels:
            channel.close()
        for running in self.wallets:
            running.server.stop(0)


def libpq_dsn(sqlalchemy_url: str) -> str:
    """The psycopg DSN for a `postgresql+psycopg://` URL."""
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def deadlock_count(sqlalchemy_url: str) -> int:
    """Deadlocks PostgreSQL has detected in that database (backends report on exit)."""
    with psycopg.connect(libpq_dsn(sqlalchemy_url)) as conn:
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def pg_url(pg_database_factory: Callable[[], str]) -> str:
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
