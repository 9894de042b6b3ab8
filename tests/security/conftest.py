"""Fixtures for the OWASP API Security Top 10 (2023) suite.

Every test runs against the real wallet (SQLite and PostgreSQL, from tests/conftest.py)
and, for REST, a real gateway in a thread pointed at it. `unchanged` snapshots the whole
database (users, accounts, transactions, ledger entries) so a test can assert that a
refused hostile request changed nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wallet.v1 import wallet_pb2_grpc

from tests.support import (
    Account,
    CreateDatabase,
    MakeUser,
    RunningWallet,
    StartWallet,
    Unchanged,
    bearer,
    database_url,
    login,
    register,
    start_wallet,
    wallet_settings,
)


@pytest.fixture
def unchanged(wallet: RunningWallet) -> Unchanged:
    return Unchanged(wallet.store)


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
def start_limited_wallet(
    wallet: RunningWallet,
    fraud_addr: str,
    tmp_path: Path,
    pg_database_factory: CreateDatabase,
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


@pytest.fixture
def rest(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        yield client
