"""Fixtures that start the real things: fraud and wallet gRPC servers on loopback ports,
fresh SQLite files and fresh PostgreSQL databases.

Every test that uses `wallet` (or `stub`) runs once per store: `sqlite` and `postgres`.
PostgreSQL and Redis tests skip when no server answers, except in CI (CI=true), where they
fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import hypothesis
import psycopg
import pytest
import redis
from wallet.v1 import wallet_pb2_grpc

from wallet_service.server import WalletServer, create_server
from wallet_service.settings import WalletSettings
from wallet_service.store import SqlStore

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_USERNAME = "root_admin"
ADMIN_PASSWORD = "admin-password-123"
TEST_JWT_SECRET = "test-secret-" + "x" * 40
IN_CI = os.environ.get("CI", "").lower() == "true"
RELAXED_LIMIT = "1000000"

# Hypothesis' per-example deadline (200 ms) and its too_slow health check are wall-clock
# assertions: on a loaded machine they fail tests whose properties hold. Examples are
# bounded by count (max_examples) and a hang by pytest-timeout instead.
hypothesis.settings.register_profile(
    "wallet",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("wallet")


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def require_postgres() -> None:
    if not pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but does not answer at {PG_ADMIN_DSN}")
        pytest.skip("PostgreSQL is not running")


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def require_redis() -> None:
    """Skipped locally if Redis is down, a failure in CI (decided when a test asks for it,
    not at import, so CI=true is honoured)."""
    if not redis_available():
        if IN_CI:
            pytest.fail(f"Redis is required in CI but does not answer at {REDIS_URL}")
        pytest.skip("Redis is not running")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis for the shared-limit tests."""
    require_redis()
    return REDIS_URL


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[object]:
    """Creates fresh PostgreSQL databases on demand and drops them at the end."""
    created: list[str] = []

    def create() -> str:
        require_postgres()
        name = f"wallet_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    yield create
    if created:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            for name in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(backend: str, tmp_dir: Path, pg_database_factory: object) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir / f'wallet-{uuid.uuid4().hex[:8]}.db'}"
    return pg_database_factory()  # type: ignore[operator,no-any-return]


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


@pytest.fixture(scope="session")
def fraud_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session fraud service's own store (rules as data), seeded from rules.toml."""
    return f"sqlite:///{tmp_path_factory.mktemp('fraud') / 'fraud.db'}"


@pytest.fixture(scope="session")
def fraud_addr(fraud_store_url: str) -> Iterator[str]:
    from fraud_service.server import create_server as create_fraud_server
    from fraud_service.settings import FraudSettings

    server, port = create_fraud_server(
        FraudSettings.from_env({"FRAUD_ADDR": "127.0.0.1:0", "FRAUD_DATABASE_URL": fraud_store_url})
    )
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0).wait()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def wallet(
    request: pytest.FixtureRequest,
    fraud_addr: str,
    tmp_path_factory: pytest.TempPathFactory,
    pg_database_factory: object,
) -> Iterator[RunningWallet]:
    backend = request.param
    url = database_url(backend, tmp_path_factory.mktemp("wallet"), pg_database_factory)
    running = start_wallet(wallet_settings(url, fraud_addr), backend)
    yield running
    running.server.stop(0)


@pytest.fixture(scope="session")
def wallet_addr(wallet: RunningWallet) -> str:
    return wallet.addr


@pytest.fixture(scope="session")
def admin_credentials() -> tuple[str, str]:
    return ADMIN_USERNAME, ADMIN_PASSWORD


@pytest.fixture(scope="session")
def channel(wallet: RunningWallet) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(wallet.addr) as chan:
        yield chan


@pytest.fixture(scope="session")
def stub(channel: grpc.Channel) -> wallet_pb2_grpc.WalletServiceStub:
    return wallet_pb2_grpc.WalletServiceStub(channel)
