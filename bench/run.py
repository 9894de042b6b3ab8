"""`make bench`: wallet transfers per second against pgbench's TPC-B, in one run.

    python -m bench.run [--smoke] [--duration 10] [--warmup 2] [--clients 1,8,32,64]
                        [--layouts many,hot]
                        [--systems pgbench,grpc-pg,gateway-pg,grpc-sqlite,bulk-pg]
                        [--seed 1] [--out bench/results] [--profile DIR]

For every layout, system and client count (a "cell"): fresh database, fresh wallet (and
gateway) processes, a separate load-generator process (bench.loadgen) that sets up users
outside the timed window, warms up, then records every call for `--duration` seconds;
then the processes stop and the books are checked (balances equal ledger sums, nothing
negative). A cell that fails the check keeps its numbers but is marked INVALID and gets
no ratio. Writes results.json, results.md and throughput.png into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import pgbench, report, wrk_driver
from bench.loadgen import Spec
from bench.pgbench import PgServer
from bench.services import Service, start_fraud, start_gateway, start_wallet

SYSTEMS = ("pgbench", "grpc-pg", "gateway-pg", "grpc-sqlite", "bulk-pg")
BULK_BATCH_SIZE = 100  # bulk-pg: transfers per CreateTransfers call
LAYOUTS = ("many", "hot")
FUND_AMOUNT = "4000.00"  # below every fraud threshold: funding is not what is measured
LOADGEN_SLACK_SECONDS = 300
_PROFILE_FLAGS = {"gil": ["--gil"], "cpu": [], "wall": ["--idle"]}


@dataclass(frozen=True)
class Config:
    smoke: bool
    duration: int
    warmup: int
    clients: list[int]
    layouts: list[str]
    systems: list[str]
    seed: int
    many_users: int
    hot_users: int
    wallet_workers: int
    db_pool_size: int
    out: str
    profile: str | None
    profile_mode: str
    keep_logs: bool
    http_driver: str = "httpx"
    wallet_processes: tuple[int, ...] = (1,)

    def users(self, layout: str) -> int:
        return self.many_users if layout == "many" else self.hot_users

    def fund_deposits(self, layout: str) -> int:
        return 1 if layout == "many" else 3  # hot accounts carry every transfer


def _csv(value: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if allowed is not None:
        unknown = [v for v in items if v not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {allowed}")
    return items


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="a few seconds, small numbers")
    p.add_argument("--duration", type=int, help="timed seconds per cell (default 10; smoke 1)")
    p.add_argument("--warmup", type=int, help="warm-up seconds per cell (default 2; smoke 0)")
    p.add_argument("--clients", help="concurrencies (default 1,8,32,64; smoke 2)")
    p.add_argument("--layouts", default=",".join(LAYOUTS))
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--many-users", type=int, help="users in the `many` layout (256; smoke 8)")
    p.add_argument("--hot-users", type=int, help="users in the `hot` layout (4; smoke 3)")
    p.add_argument("--wallet-workers", type=int, default=32, help="WALLET_WORKERS (default 32)")
    p.add_argument("--db-pool-size", type=int, default=20, help="WALLET_DB_POOL_SIZE (20)")
    p.add_argument(
        "--wallet-processes",
        default="1",
        help="WALLET_PROCESSES values to run each PostgreSQL wallet system with (default 1; "
        "e.g. 1,2: a cell per value; N > 1 is reported as system `<name>@Np`)",
    )
    p.add_argument("--out", help="output directory (default bench/results; smoke: a temp dir)")
    p.add_argument("--profile", help="py-spy the wallet/gateway in each window into this dir")
    p.add_argument(
        "--profile-mode",
        choices=("gil", "cpu", "wall"),
        default="gil",
        help="py-spy samples: threads holding the GIL (gil), running (cpu) or all (wall)",
    )
    p.add_argument("--keep-logs", action="store_true", help="keep the service logs")
    p.add_argument(
        "--http-driver",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="load generator for gateway-pg: wrk (C) when installed, else httpx (auto); "
        "smoke mode uses httpx",
    )
    a = p.parse_args(argv)
    try:
        layouts = _csv(a.layouts, LAYOUTS)
        systems = _csv(a.systems, SYSTEMS)
        clients = [int(c) for c in _csv(a.clients or ("2" if a.smoke else "1,8,32,64"))]
        processes = [int(n) for n in _csv(a.wallet_processes)]
    except (argparse.ArgumentTypeError, ValueError) as exc:
        p.error(str(exc))
    if any(c < 1 for c in clients):
        p.error("client counts must be >= 1")
    if not processes or any(n < 1 for n in processes):
        p.error("wallet processes must be >= 1")
    out = a.out or (tempfile.mkdtemp(prefix="bench-smoke-") if a.smoke else "bench/results")
    return Config(
        smoke=a.smoke,
        duration=a.duration if a.duration is not None else (1 if a.smoke else 10),
        warmup=a.warmup if a.warmup is not None else (0 if a.smoke else 2),
        clients=sorted(set(clients)),
        layouts=layouts,
        systems=systems,
        seed=a.seed,
        many_users=a.many_users or (8 if a.smoke else 256),
        hot_users=max(2, a.hot_users or (3 if a.smoke else 4)),
        wallet_workers=a.wallet_workers,
        db_pool_size=a.db_pool_size,
        out=out,
        profile=a.profile,
        profile_mode=a.profile_mode,
        keep_logs=a.keep_logs,
        http_driver=_http_driver(a.http_driver, smoke=a.smoke),
        wallet_processes=tuple(sorted(set(processes))),
    )


def _http_driver(choice: str, *, smoke: bool) -> str:
    if choice == "auto":
        return "wrk" if wrk_driver.available() and not smoke else "httpx"
    if choice == "wrk" and not wrk_driver.available():
        raise SystemExit("--http-driver wrk: wrk is not installed (apt-get install wrk)")
    return choice


def _log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _empty_row(system: str, layout: str, clients: int) -> dict[str, Any]:
    return {
        "system": system,
        "layout": layout,
        "clients": clients,
        "tps": 0.0,
        "transfers_ok": 0,
        "latency": {"p50_ms": None, "p95_ms": None, "p99_ms": None},
        "codes": {},
        "errors": 0,
        "flagged": 0,
        "cpu_seconds": {},
        "ledger_violations": [],
        "valid": False,
    }


class Bench:
    def __init__(self, config: Config, work_dir: Path, pg: PgServer) -> None:
        self.config = config
        self.work_dir = work_dir
        self.pg = pg
        self.fraud: Service | None = None

    # -- pgbench --------------------------------------------------------------------------

    def pgbench_layout(self, layout: str) -> list[dict[str, Any]]:
        scale = max(self.config.clients) if layout == "many" else 1
        dbname = f"bench_pgbench_{uuid.uuid4().hex[:10]}"
        rows = []
        try:
            self.pg.create_database(dbname)
            _log(f"pgbench: initialising scale {scale} for layout {layout}")
            pgbench.initialize(self.pg, dbname, scale)
        except Exception as exc:
            _log(f"pgbench: cannot initialise: {exc}")
            self._drop(dbname)
            for clients in self.config.clients:
                rows.append(_empty_row("pgbench", layout, clients) | {"failure": str(exc)})
            return rows
        try:
            for clients in self.config.clients:
                row = _empty_row("pgbench", layout, clients)
                row["pgbench_scale"] = scale
                try:
                    row |= pgbench.run_cell(
                        self.pg,
                        dbname,
                        clients=clients,
                        duration=self.config.duration,
                        warmup=self.config.warmup,
                        seed=self.config.seed,
                        work_dir=self.work_dir,
                        trees=self._trees(),
                    )
                    row["valid"] = not row["ledger_violations"] and row["transfers_ok"] > 0
                except Exception as exc:
                    row["failure"] = f"{type(exc).__name__}: {exc}"
                    traceback.print_exc()
                _log(_summary(row))
                rows.append(row)
        finally:
            self._drop(dbname)
        return rows

    def _trees(self) -> dict[str, int]:
        """Read per cell: the server may have been restarted by someone else meanwhile."""
        try:
            postmaster = self.pg.postmaster_pid()
        except Exception:
            postmaster = None
        return {"postgres": postmaster} if postmaster else {}

    def _drop(self, dbname: str) -> None:
        try:
            self.pg.drop_database(dbname)
        except Exception as exc:
            _log(f"could not drop database {dbname}: {exc}")

    # -- wallet systems -------------------------------------------------------------------

    def wallet_cell(
        self, system: str, layout: str, clients: int, processes: int = 1
    ) -> dict[str, Any]:
        assert self.fraud is not None
        name = system_name(system, processes)
        cell = f"{name}-{layout}-c{clients}"
        cell_dir = self.work_dir / cell
        cell_dir.mkdir(parents=True, exist_ok=True)
        on_pg = system.endswith("-pg")
        dbname = f"bench_wallet_{uuid.uuid4().hex[:10]}"
        url = self.pg.sqlalchemy_url(dbname) if on_pg else f"sqlite:///{cell_dir / 'wallet.db'}"
        row = _empty_row(name, layout, clients)
        row["users"] = self.config.users(layout)
        row["wallet_processes"] = processes
        _log(f"{cell}: starting")
        try:
            if on_pg:
                self.pg.create_database(dbname)
            row |= self._drive(system, layout, clients, url, cell_dir, processes)
            row |= _check_books(url, row)
        except Exception as exc:
            row["failure"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            if on_pg:
                self._drop(dbname)
        _log(_summary(row))
        return row

    def _drive(
        self, system: str, layout: str, clients: int, url: str, cell_dir: Path, processes: int
    ) -> dict[str, Any]:
        assert self.fraud is not None
        started: list[Service] = []
        try:
            wallet = start_wallet(
                cell_dir,
                database_url=url,
                fraud_addr=self.fraud.address,
                workers=self.config.wallet_workers,
                pool_size=self.config.db_pool_size,
                processes=processes,
            )
            started.append(wallet)
            pids = {"fraud": self.fraud.pid}
            trees = self._trees() if system.endswith("-pg") else {}
            if processes > 1:  # the supervisor and its worker processes
                trees["wallet"] = wallet.pid
            else:
                pids["wallet"] = wallet.pid
            kind, target = "grpc", wallet.address
            if system == "gateway-pg":
                gateway = start_gateway(cell_dir, wallet_addr=wallet.address)
                started.append(gateway)
                pids["gateway"] = gateway.pid
                kind, target = "http", gateway.address
            spec = Spec(
                kind=kind,
                target=target,
                clients=clients,
                users=self.config.users(layout),
                duration=self.config.duration,
                warmup=self.config.warmup,
                seed=self.config.seed,
                run_id=uuid.uuid4().hex[:6],
                fund_amount=FUND_AMOUNT,
                fund_deposits=self.config.fund_deposits(layout),
                pids=pids,
                trees=trees,
                profile=self._profile_targets(system, layout, clients, started),
                profile_flags=_PROFILE_FLAGS[self.config.profile_mode],
                http_driver=self.config.http_driver,
                batch_size=BULK_BATCH_SIZE if system == "bulk-pg" else 1,
            )
            _log(f"{system} {layout} c={clients}: services ready, load generator starting")
            result = _run_loadgen(spec, cell_dir)
            result["exit_codes"] = {s.name: s.terminate() for s in reversed(started)}
            started.clear()
            return result
        finally:
            for service in reversed(started):
                service.terminate()

    def _profile_targets(
        self, system: str, layout: str, clients: int, started: list[Service]
    ) -> dict[str, list[Any]]:
        if not self.config.profile:
            return {}
        out = Path(self.config.profile).resolve()
        out.mkdir(parents=True, exist_ok=True)
        return {
            s.name: [
                s.pid,
                str(out / f"{system}-{layout}-c{clients}-{s.name}-{self.config.profile_mode}.txt"),
            ]
            for s in started
        }

    def run(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        wallet_systems = [s for s in self.config.systems if s != "pgbench"]
        if wallet_systems:
            self.fraud = start_fraud(self.work_dir / "fraud")
        try:
            for layout in self.config.layouts:
                if "pgbench" in self.config.systems:
                    anchor = self.pgbench_layout(layout)
                    if any("failure" in r for r in anchor):
                        _log("pgbench: retrying the layout once after the server is back")
                        _wait_for_postgres(self.pg)
                        anchor = [r | {"retried": True} for r in self.pgbench_layout(layout)]
                    rows += anchor
                for system in wallet_systems:
                    # SQLite is served by one process (WALLET_PROCESSES > 1 refuses it).
                    counts = self.config.wallet_processes if system.endswith("-pg") else (1,)
                    for processes in counts:
                        for clients in self.config.clients:
                            rows.append(self._cell_with_retry(system, layout, clients, processes))
        finally:
            if self.fraud is not None:
                self.fraud.terminate()
        return rows

    def _cell_with_retry(
        self, system: str, layout: str, clients: int, processes: int
    ) -> dict[str, Any]:
        row = self.wallet_cell(system, layout, clients, processes)
        if "failure" in row:  # infrastructure (e.g. PostgreSQL restarted)
            _log("retrying the cell once after the server is back")
            _wait_for_postgres(self.pg)
            row = self.wallet_cell(system, layout, clients, processes) | {"retried": True}
        return row


def system_name(system: str, processes: int) -> str:
    """How a cell's system is reported: `grpc-pg`, or `grpc-pg@2p` with 2 wallet processes."""
    return system if processes == 1 else f"{system}@{processes}p"


def _wait_for_postgres(pg: PgServer, timeout: float = 120.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(pg.dsn("postgres"), connect_timeout=3):
                return
        except psycopg.Error:
            time.sleep(1)


def _run_loadgen(spec: Spec, cell_dir: Path) -> dict[str, Any]:
    spec_path, result_path = cell_dir / "spec.json", cell_dir / "result.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    timeout = spec.warmup + spec.duration + LOADGEN_SLACK_SECONDS
    with (cell_dir / "loadgen.log").open("ab") as log:
        done = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", str(spec_path), str(result_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        tail = (cell_dir / "loadgen.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"loadgen exited with {done.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def _check_books(url: str, row: dict[str, Any]) -> dict[str, Any]:
    """The wallet's own invariant check, plus: every transfer the clients saw succeed is in
    the ledger exactly once (no more, no fewer)."""
    from sqlalchemy import func, select

    from wallet_service.database import create_db_engine
    from wallet_service.ledger import verify_ledger
    from wallet_service.schema import transactions
    from wallet_service.store import SqlStore

    engine = create_db_engine(url, pool_size=1)
    try:
        violations = verify_ledger(SqlStore(engine))
        with engine.connect() as conn:
            stored = conn.execute(
                select(func.count()).where(
                    transactions.c.type == "transfer", transactions.c.status == "completed"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    seen, slack = row.get("client_ok_total") or 0, row.get("client_ok_slack", 0)
    if not seen <= stored <= seen + slack:
        violations.append(
            f"{stored} completed transfers stored, clients saw {row.get('client_ok_total')}"
        )
    return {
        "ledger_violations": violations,
        "db_transfers": int(stored),
        "valid": not violations and row["transfers_ok"] > 0,
    }


def _summary(row: dict[str, Any]) -> str:
    lat = row["latency"]
    p99 = "-" if lat.get("p99_ms") is None else f"{lat['p99_ms']:.1f}"
    status = "ok" if row["valid"] else f"INVALID {row.get('failure') or row['ledger_violations']}"
    return (
        f"{row['system']:<12} {row['layout']:<5} c={row['clients']:<3} "
        f"tps={row['tps']:>8.1f} p99={p99:>7} ms errors={row['errors']} {status}"
    )


def _machine(pg: PgServer) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(pg.dsn("postgres")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('max_connections','shared_buffers','synchronous_commit','fsync',"
                "'wal_level','max_wal_size')"
            ).fetchall()
        )
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres_version": row[0] if row else None,
        "postgres_settings": settings,
    }


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    pg = PgServer(
        host=os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("BENCH_PG_PORT", "5432")),
        user=os.environ.get("BENCH_PG_USER", "postgres"),
    )
    work_dir = Path(tempfile.mkdtemp(prefix="wallet-bench-"))
    _log(f"config {asdict(config)}; logs in {work_dir}")
    started_at = datetime.now(UTC)
    t0 = time.monotonic()
    rows = Bench(config, work_dir, pg).run()
    run = {
        "started_at": started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "wall_seconds": round(time.monotonic() - t0, 1),
        "config": asdict(config),
        "machine": _machine(pg),
        "rows": rows,
    }
    paths = report.write_all(run, Path(config.out))
    for line in run["headline"]:  # type: ignore[attr-defined]
        _log(line)
    _log(f"wrote {', '.join(str(p) for p in paths.values())} in {run['wall_seconds']} s")
    bad = [r for r in rows if not r["valid"]]
    if config.keep_logs or bad:
        _log(f"service logs kept in {work_dir}")
    else:
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)
    if bad:
        _log(f"{len(bad)} cell(s) failed or were INVALID")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
