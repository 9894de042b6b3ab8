"""Real servers for tests: wallet and fraud gRPC servers in this process on port 0, and the
settings they start with."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import grpc
from sqlalchemy import Table, func, select
from wallet.v1 import wallet_pb2_grpc

from fraud_service.server import FraudServer
from fraud_service.server import create_server as create_fraud_server
from fraud_service.settings import FraudSettings
from wallet_service.server import WalletServer, create_server
from wallet_service.settings import WalletSettings
from wallet_service.store import SqlStore

ADMIN_USERNAME = "root_admin"
ADMIN_PASSWORD = "admin-password-123"
TEST_JWT_SECRET = "test-secret-" + "x" * 40
RELAXED_LIMIT = "1000000"


def wallet_settings(database_url: str, fraud_addr: str, **overrides: str) -> WalletSettings:
    env = {
        "APP_ENV": "test",
        "WALLET_ADDR": "127.0.0.1:0",
        "WALLET_DATABASE_URL": database_url,
        "WALLET_DB_POOL_SIZE": "10",
        "WALLET_WORKERS": "64",
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        "FRAUD_ADDR": fraud_addr,
        "ADMIN_USERNAME": ADMIN_USERNAME,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WALLET_GRACE_SECONDS": "1",
        "LOGIN_MAX_FAILURES": "5",
        # Every test shares 127.0.0.1 and many share a user: limits far out of their way
        # (the limiter still runs); the limit tests start wallets with tight ones.
        "WALLET_REGISTER_RATE_LIMIT_PER_PEER": RELAXED_LIMIT,
        "WALLET_LOGIN_RATE_LIMIT_PER_PEER": RELAXED_LIMIT,
        "MONEY_RATE_LIMIT_PER_USER": RELAXED_LIMIT,
        # The outbox's worker is off in the shared wallets (their events stay pending for
        # the tests that look at them); tests/notify start it where they want it.
        "NOTIFY_WORKER": "false",
        # The fraud deadline as a hang guard (the default is 200 ms): on a loaded CI host a
        # score can take longer, and a movement completed UNSCORED would fail any test that
        # expects a verdict. The deadline tests set their own (test_fraud_flow: 200 ms).
        "FRAUD_TIMEOUT_MS": "5000",
    }
    env.update(overrides)
    return WalletSettings.from_env(env)


@dataclass
class RunningWallet:
    server: WalletServer
    addr: str
    store: SqlStore
    backend: str


def start_wallet(settings: WalletSettings, backend: str) -> RunningWallet:
    wallet = create_server(settings)
    wallet.start()
    store = wallet.service.store
    assert isinstance(store, SqlStore)
    return RunningWallet(wallet, f"127.0.0.1:{wallet.port}", store, backend)


class StartWallet(Protocol):
    """The `start_limited_wallet` fixture: another wallet, on a fresh database or `url`."""

    def __call__(self, url: str | None = None, **env: str) -> RunningWallet: ...


@contextmanager
def wallet_on_sqlite(directory: Path, fraud_addr: str) -> Iterator[RunningWallet]:
    """A wallet server on a new SQLite file in `directory`, stopped after the block."""
    url = f"sqlite:///{directory / 'wallet.db'}"
    running = start_wallet(wallet_settings(url, fraud_addr), "sqlite")
    try:
        yield running
    finally:
        running.server.stop(0)


def url_of(running: RunningWallet) -> str:
    """The database URL `running` uses (password kept), for a replica on the same one."""
    return running.store.engine.url.render_as_string(hide_password=False)


@contextmanager
def stub_for(running: RunningWallet) -> Iterator[wallet_pb2_grpc.WalletServiceStub]:
    with grpc.insecure_channel(running.addr) as channel:
        yield wallet_pb2_grpc.WalletServiceStub(channel)


def start_fraud(**env: str) -> FraudServer:
    """A started fraud server on a free loopback port; `env` as FRAUD_* variables. Unless
    `env` names one, it gets a fresh store of its own (seeded from the rules file), so no
    test sees another's rule sets, lists or snoozes."""
    if "FRAUD_DATABASE_URL" not in env:
        directory = Path(tempfile.mkdtemp(prefix="fraud-store-"))
        env["FRAUD_DATABASE_URL"] = f"sqlite:///{directory / 'fraud.db'}"
    server = create_fraud_server(FraudSettings.from_env({"FRAUD_ADDR": "127.0.0.1:0", **env}))
    server.start()
    return server


def count_rows(wallet: RunningWallet, table: Table) -> int:
    with wallet.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


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
