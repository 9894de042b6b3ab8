"""Several `python -m wallet_service` processes started at the same moment on one empty
PostgreSQL database: all migrate (under the advisory lock), bootstrap the same admin, serve,
and stop cleanly on SIGTERM."""

from __future__ import annotations

import threading

import grpc
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, func, inspect, select, text
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from common.processes import free_address
from tests.support import ADMIN_PASSWORD, ADMIN_USERNAME, TEST_JWT_SECRET, SpawnService
from wallet_service.database import alembic_config, create_db_engine, migrate
from wallet_service.ids import uuid7
from wallet_service.models import utc_now
from wallet_service.schema import metadata, users
from wallet_service.store import SqlStore

pytestmark = pytest.mark.postgres

REPLICAS = 3
START_TIMEOUT = 120.0  # hang guard


def replica_env(url: str, fraud_addr: str, addr: str) -> dict[str, str]:
    return {
        "APP_ENV": "test",
        "WALLET_ADDR": addr,
        "WALLET_DATABASE_URL": url,
        "WALLET_DB_POOL_SIZE": "4",
        "WALLET_GRACE_SECONDS": "2",
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        "FRAUD_ADDR": fraud_addr,
        "ADMIN_USERNAME": ADMIN_USERNAME,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LOG_LEVEL": "WARNING",
    }


def test_replicas_started_together_on_an_empty_database_all_come_up(
    pg_url: str, fraud_addr: str, spawn: SpawnService
) -> None:
    addrs = [free_address() for _ in range(REPLICAS)]
    replicas = [
        spawn(f"replica-{i}", "wallet_service", **replica_env(pg_url, fraud_addr, addr))
        for i, addr in enumerate(addrs)
    ]
    for replica in replicas:  # all at once: they race to migrate and bootstrap
        replica.start()
    for replica, addr in zip(replicas, addrs, strict=True):
        replica.wait_grpc_serving(addr, "wallet.v1.WalletService", timeout=START_TIMEOUT)

    # One schema at head, one admin, and every replica lets that admin in.
    engine = create_engine(pg_url)
    try:
        head = ScriptDirectory.from_config(alembic_config(pg_url)).get_current_head()
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            admins = conn.execute(
                select(users.c.role, func.count())
                .where(users.c.username == ADMIN_USERNAME)
                .group_by(users.c.role)
            ).all()
        assert [v[0] for v in versions] == [head]
        assert set(inspect(engine).get_table_names()) == {*metadata.tables, "alembic_version"}
        assert [tuple(a) for a in admins] == [("admin", 1)]
    finally:
        engine.dispose()
    for addr in addrs:
        with grpc.insecure_channel(addr) as channel:
            stub = wallet_pb2_grpc.WalletServiceStub(channel)
            login = stub.Login(
                wallet_pb2.LoginRequest(username=ADMIN_USERNAME, password=ADMIN_PASSWORD),
                timeout=10,
            )
            assert login.access_token
    for replica in replicas:
        replica.request_stop()  # all drain at once
    codes = [replica.terminate(timeout=START_TIMEOUT) for replica in replicas]
    assert codes == [0] * REPLICAS, {r.name: r.log_tail() for r in replicas}


BOOTSTRAP_ROUNDS = 5


def test_admin_bootstrap_from_replicas_at_the_same_moment(pg_url: str) -> None:
    """What every replica runs at start (after migrating): ensure_admin(ADMIN_USERNAME)."""
    engines = [create_db_engine(pg_url, pool_size=1) for _ in range(REPLICAS + 1)]
    try:
        migrate(engines[0])
        failures: list[str] = []
        for round_ in range(BOOTSTRAP_ROUNDS):
            username = f"{ADMIN_USERNAME}_{round_}"
            barrier = threading.Barrier(len(engines))

            def bootstrap(
                engine: Engine, name: str = username, barrier: threading.Barrier = barrier
            ) -> None:
                barrier.wait()
                try:
                    SqlStore(engine).ensure_admin(
                        user_id=uuid7(), username=name, password_hash="x", now=utc_now()
                    )
                except Exception as exc:  # the point: nothing may escape
                    failures.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

            threads = [threading.Thread(target=bootstrap, args=(e,)) for e in engines]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert failures == []
        with engines[0].connect() as conn:
            admins = conn.execute(
                select(func.count()).select_from(users).where(users.c.role == "admin")
            ).scalar_one()
        assert admins == BOOTSTRAP_ROUNDS
    finally:
        for engine in engines:
            engine.dispose()
