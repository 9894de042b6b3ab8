"""Fixtures for the OWASP API Security Top 10 (2023) suite.

Every test runs against the real wallet (SQLite and PostgreSQL, from tests/conftest.py)
and, for REST, a real gateway in a thread pointed at it. `unchanged` snapshots the whole
database (users, accounts, transactions, ledger entries) so a test can assert that a
refused hostile request changed nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import select, update
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.conftest import RunningWallet, database_url, start_wallet, wallet_settings
from tests.gateway_server import GatewayThread, gateway_settings
from tests.helpers import bearer, login, register
from wallet_service.schema import accounts, ledger_entries, transactions, users
from wallet_service.store import SqlStore

Metadata = tuple[tuple[str, str], ...]


def db_snapshot(store: SqlStore) -> dict[str, Any]:
    """Every row of every table that holds state, in a stable order."""
    snapshot: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for table in (users, accounts, transactions, ledger_entries):
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            snapshot[table.name] = [tuple(row) for row in rows]
    return snapshot


class Unchanged:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    @contextmanager
    def __call__(self) -> Iterator[None]:
        before = db_snapshot(self.store)
        yield
        after = db_snapshot(self.store)
        for table, rows in before.items():
            assert after[table] == rows, f"table {table} changed by a refused request"


@pytest.fixture
def unchanged(wallet: RunningWallet) -> Unchanged:
    return Unchanged(wallet.store)


@dataclass
class Account:
    username: str
    user_id: str
    metadata: Metadata
    token: str

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeUser = Callable[[], Account]


@pytest.fixture
def make_user(stub: wallet_pb2_grpc.WalletServiceStub, wallet: RunningWallet) -> MakeUser:
    def make() -> Account:
        name = register(stub)
        token = login(stub, name)
        found = wallet.store.get_user_by_username(name)
        assert found is not None
        return Account(name, found.id, bearer(token), token)

    return make


@pytest.fixture
def admin(
    stub: wallet_pb2_grpc.WalletServiceStub,
    wallet: RunningWallet,
    admin_credentials: tuple[str, str],
) -> Account:
    name, password = admin_credentials
    token = login(stub, name, password)
    found = wallet.store.get_user_by_username(name)
    assert found is not None
    return Account(name, found.id, bearer(token), token)


def set_role_in_database(store: SqlStore, user_id: str, role: str) -> None:
    """A direct database edit that bypasses the store (so the credentials version stays):
    the role is still read from the database on every call. `SqlStore.set_role`, what an
    operator's command uses, also revokes the user's tokens."""
    with store.engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(role=role))


def deposit(
    stub: wallet_pb2_grpc.WalletServiceStub, who: Account, amount: str, currency: str = "USD"
) -> wallet_pb2.MovementResponse:
    return stub.Deposit(
        wallet_pb2.DepositRequest(amount=amount, currency=currency, idempotency_key=_key()),
        metadata=who.metadata,
    )


def transfer(
    stub: wallet_pb2_grpc.WalletServiceStub, who: Account, to: Account, amount: str
) -> wallet_pb2.MovementResponse:
    return stub.Transfer(
        wallet_pb2.TransferRequest(
            to_username=to.username, amount=amount, currency="USD", idempotency_key=_key()
        ),
        metadata=who.metadata,
    )


def _key() -> str:
    return hashlib.sha256(str(time.perf_counter_ns()).encode()).hexdigest()[:32]


StartWallet = Callable[..., RunningWallet]


@pytest.fixture
def start_limited_wallet(
    wallet: RunningWallet, fraud_addr: str, tmp_path: Path, pg_database_factory: object
) -> Iterator[StartWallet]:
    """Another wallet on the same store kind as `wallet`, with its own settings (e.g. tight
    limits the shared wallet cannot have). `url=` puts it on an existing database: a replica."""
    started: list[RunningWallet] = []

    def start(url: str | None = None, **env: str) -> RunningWallet:
        url = url or database_url(wallet.backend, tmp_path, pg_database_factory)
        running = start_wallet(wallet_settings(url, fraud_addr, **env), wallet.backend)
        started.append(running)
        return running

    yield start
    for running in started:
        running.server.stop(0)


def url_of(running: RunningWallet) -> str:
    return running.store.engine.url.render_as_string(hide_password=False)


@contextmanager
def stub_for(running: RunningWallet) -> Iterator[wallet_pb2_grpc.WalletServiceStub]:
    with grpc.insecure_channel(running.addr) as channel:
        yield wallet_pb2_grpc.WalletServiceStub(channel)


# -- the gateway ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gateway_url(wallet: RunningWallet) -> Iterator[str]:
    gateway = GatewayThread(gateway_settings(wallet.addr))
    gateway.start()
    yield gateway.url
    gateway.stop()


@pytest.fixture
def rest(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        yield client


@pytest.fixture
def start_gateway(wallet: RunningWallet) -> Iterator[Callable[..., str]]:
    started: list[GatewayThread] = []

    def start(**overrides: Any) -> str:
        """A gateway in front of `wallet`, or of another one given as wallet_addr=."""
        addr = overrides.pop("wallet_addr", wallet.addr)
        gateway = GatewayThread(gateway_settings(addr, **overrides))
        gateway.start()
        started.append(gateway)
        return gateway.url

    yield start
    for gateway in started:
        gateway.stop()


def error_code(response: httpx.Response) -> str:
    body = response.json()
    return str(body["error"]["code"])
