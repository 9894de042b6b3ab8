"""Several `python -m wallet_service` processes started at the same moment on one empty
PostgreSQL database: all migrate (under the advisory lock), bootstrap the same admin, serve,
and stop cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from alembic.script import ScriptDirectory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, create_engine, func, inspect, select, text
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, TEST_JWT_SECRET
from wallet_service.database import alembic_config, create_db_engine, migrate
from wallet_service.ids import uuid7
from wallet_service.models import utc_now
from wallet_service.schema import metadata, users
from wallet_service.store import SqlStore

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
REPLICAS = 3
START_TIMEOUT = 120.0  # hang guard
_OURS = ("WALLET_", "FRAUD_", "JWT_", "ADMIN_", "APP_ENV", "LOG_LEVEL")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def replica_env(url: str, fraud_addr: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "gen")]),
        "APP_ENV": "test",
        "WALLET_ADDR": f"127.0.0.1:{port}",
        "WALLET_DATABASE_URL": url,
        "WALLET_DB_POOL_SIZE": "4",
        "WALLET_GRACE_SECONDS": "2",
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        "FRAUD_ADDR": fraud_addr,
        "ADMIN_USERNAME": ADMIN_USERNAME,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LOG_LEVEL": "WARNING",
    }
    return env


def serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="wallet.v1.WalletService"), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def test_replicas_started_together_on_an_empty_database_all_come_up(
    pg_url: str, fraud_addr: str, tmp_path: Path
) -> None:
    ports = free_ports(REPLICAS)
    logs = [tmp_path / f"replica-{i}.log" for i in range(REPLICAS)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port, log in zip(ports, logs, strict=True):
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "wallet_service"],
                        env=replica_env(pg_url, fraud_addr, port),
                        cwd=tmp_path,  # no stray .env from the developer's checkout
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        deadline = time.monotonic() + START_TIMEOUT
        pending = set(range(REPLICAS))
        while pending and time.monotonic() < deadline:
            for i in sorted(pending):
                assert procs[i].poll() is None, (
                    f"replica {i} exited with {procs[i].returncode}:\n{tail(logs[i])}"
                )
                if serving(ports[i]):
                    pending.discard(i)
            time.sleep(0.1)
        assert not pending, {i: tail(logs[i]) for i in pending}

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
        for port in ports:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = wallet_pb2_grpc.WalletServiceStub(channel)
                login = stub.Login(
                    wallet_pb2.LoginRequest(username=ADMIN_USERNAME, password=ADMIN_PASSWORD),
                    timeout=10,
                )
                assert login.access_token
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=15))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
    assert codes == [0] * REPLICAS, {i: tail(logs[i]) for i, c in enumerate(codes) if c != 0}


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
