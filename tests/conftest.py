"""Fixtures that start the real things: fraud and wallet gRPC servers on loopback ports,
fresh SQLite files and fresh PostgreSQL databases, gateways in threads, service processes.
The helpers behind them live in tests/support.

Every test that uses `wallet` (or `stub`) runs once per store: `sqlite` and `postgres`
(the latter marked `postgres`, so `-m "not postgres"` leaves it out). PostgreSQL and Redis
tests skip when no server answers, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import hypothesis
import pytest
from wallet.v1 import wallet_pb2_grpc

from common.processes import ServiceProcess
from fraud_service.server import create_server as create_fraud_server
from fraud_service.settings import FraudSettings
from scripts.make_certs import make_certs
from tests.support import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    Account,
    CreateDatabase,
    PgDatabases,
    RunningWallet,
    SpawnService,
    StartGateway,
    bearer,
    database_url,
    login,
    make_process,
    require_redis,
    running_gateway,
    start_fraud,
    start_wallet,
    wallet_on_sqlite,
    wallet_settings,
)

# Hypothesis' per-example deadline (200 ms) and its too_slow health check are wall-clock
# assertions: on a loaded machine they fail tests whose properties hold. Examples are
# bounded by count (max_examples) and a hang by pytest-timeout instead.
hypothesis.settings.register_profile(
    "wallet",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("wallet")


Stub = wallet_pb2_grpc.WalletServiceStub


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis for the shared-limit tests."""
    require_redis()
    return REDIS_URL


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[CreateDatabase]:
    """Creates fresh PostgreSQL databases on demand and drops them at the end."""
    databases = PgDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def fraud_addr() -> Iterator[str]:
    server = start_fraud()
    yield f"127.0.0.1:{server.port}"
    server.stop(0)


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def wallet(
    request: pytest.FixtureRequest,
    fraud_addr: str,
    tmp_path_factory: pytest.TempPathFactory,
    pg_database_factory: CreateDatabase,
) -> Iterator[RunningWallet]:
    backend: str = request.param
    url = database_url(backend, tmp_path_factory.mktemp("wallet"), pg_database_factory)
    running = start_wallet(wallet_settings(url, fraud_addr), backend)
    yield running
    running.server.stop(0)


@pytest.fixture(scope="session")
def sqlite_wallet(
    fraud_addr: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWallet]:
    """One more wallet, on a fresh SQLite file only (not parametrized by store): for the
    browser stack and the compose health checks, which need a live wallet, not both stores."""
    with wallet_on_sqlite(tmp_path_factory.mktemp("sqlite-wallet"), fraud_addr) as running:
        yield running


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


@pytest.fixture
def admin(stub: wallet_pb2_grpc.WalletServiceStub, wallet: RunningWallet) -> Account:
    """The bootstrapped admin, logged in (gRPC metadata and REST header)."""
    token = login(stub, ADMIN_USERNAME, ADMIN_PASSWORD)
    found = wallet.store.get_user_by_username(ADMIN_USERNAME)
    assert found is not None
    return Account(ADMIN_USERNAME, found.id, bearer(token), token)


# -- the gateway ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gateway_url(wallet_addr: str) -> Iterator[str]:
    """A gateway in front of the real wallet, with relaxed limits (shared by the session)."""
    with running_gateway(wallet_addr) as url:
        yield url


@pytest.fixture
def start_gateway() -> Iterator[StartGateway]:
    """`start_gateway(wallet_addr, **overrides)` -> base URL; each is stopped at test end."""
    with ExitStack() as started:

        def start(wallet_addr: str, **overrides: Any) -> str:
            return started.enter_context(running_gateway(wallet_addr, **overrides))

        yield start


# -- service processes ------------------------------------------------------------------------


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[SpawnService]:
    """`spawn(name, module, **env)` -> a ServiceProcess (not started) that runs in and logs
    to tmp_path. At the end each is stopped and its log tail printed: pytest shows it when
    the test failed, and the log file stays under tmp_path."""
    spawned: list[ServiceProcess] = []

    def make(name: str, module: str, **env: str) -> ServiceProcess:
        process = make_process(name, module, tmp_path, **env)
        spawned.append(process)
        return process

    yield make
    for process in spawned:
        if process.alive:
            process.terminate(timeout=10)
        print(f"--- {process.name} ({process.log_path}) ---\n{process.log_tail(40)}")


# -- a wallet per test on a fresh database (both stores), and a fraud service that blocks --


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_wallet(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database_factory: CreateDatabase
) -> Iterator[object]:
    backend = request.param
    started: list[RunningWallet] = []

    def make(fraud_addr: str, **env: str) -> tuple[RunningWallet, Stub]:
        url = database_url(backend, tmp_path, pg_database_factory)
        running = start_wallet(wallet_settings(url, fraud_addr, **env), backend)
        started.append(running)
        return running, wallet_pb2_grpc.WalletServiceStub(grpc.insecure_channel(running.addr))

    yield make
    for running in started:
        running.server.stop(0)


@pytest.fixture
def blocking_fraud(tmp_path: Path) -> Iterator[str]:
    rules = Path("fraud_service/rules.toml").read_text()
    block = rules.replace(
        '[rules.large_amount]\nenabled = true\ndecision = "REVIEW"',
        '[rules.large_amount]\nenabled = true\ndecision = "BLOCK"',
    )
    assert block != rules
    path = tmp_path / "rules.toml"
    path.write_text(block)
    server = create_fraud_server(
        FraudSettings.from_env(
            {
                "FRAUD_ADDR": "127.0.0.1:0",
                "FRAUD_RULES_FILE": str(path),
                # its own store: the seed is this file's rules
                "FRAUD_DATABASE_URL": f"sqlite:///{tmp_path / 'fraud.db'}",
            }
        )
    )
    server.start()
    yield f"127.0.0.1:{server.port}"
    server.stop(0)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make certs` writes to data/certs (a CA, server and client certificates), for
    TLS_CERTS_DIR."""
    directory = tmp_path_factory.mktemp("certs")
    make_certs(directory)
    return directory
