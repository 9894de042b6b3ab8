"""`python -m chaos.run --duration S --seed N --store sqlite|postgres|both --out DIR`
`python -m chaos.run --faults N --ops-after-heal M ...` (count-driven)

Starts fraud_service, a fault proxy in front of it and two wallet replicas (two processes
on one SQLite file, or two replicas on one PostgreSQL database), runs the bank workload
while the seeded injector breaks things, heals everything, then checks the ledger.

`--duration` runs for S seconds with faults at seeded random times (the long run).
`--faults` instead injects N faults one after another, each held until the workload has
observed it (client attempts failed and retried, or movements scored UNSCORED), heals, and
stops once the workload has acknowledged M operations after the last heal: the same run
on any machine, however slow (the smoke test uses it).
Writes `summary.json` and `summary.txt` under DIR and exits 1 when any violation is found.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from chaos.checker import admin_queue, check
from chaos.faults import (
    KILL_WALLET,
    FaultInjector,
    Hold,
    counted_schedule,
    ensure_postgres_running,
)
from chaos.procs import ServiceProcess, free_port, snapshot_code, wait_serving
from chaos.proxy import FaultProxy
from chaos.workload import Replicas, Workload
from common.pg_databases import create_database, drop_database
from common.processes import wait_for

log = logging.getLogger("chaos")

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
ADMIN_USERNAME = "chaos_admin"
ADMIN_PASSWORD = "chaos-admin-password-1"
JWT_SECRET = "chaos-secret-" + "k" * 40


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of workload")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument(
        "--no-pg-restart",
        action="store_true",
        help="never restart the PostgreSQL server (for the smoke run: other tests share it)",
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument(
        "--faults",
        type=int,
        default=0,
        help="count-driven run: inject N faults, each held until the workload observed it "
        "(replaces --duration)",
    )
    parser.add_argument(
        "--ops-after-heal",
        type=int,
        default=100,
        help="count-driven run: acknowledged operations to wait for after the last heal",
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Counted:
    """The count-driven plan: the fault kinds in order and the event counts that pace them.
    `hang_guard` (seconds) only bounds each wait so a stuck run fails instead of hanging."""

    kinds: list[str]
    observe: int = 3  # failed attempts (wallet kill) or UNSCORED movements (fraud faults)
    ops_between: int = 10  # acknowledged operations on a healthy system before each fault
    ops_after_heal: int = 100
    hang_guard: float = 180.0


def _hold(workload: Workload, plan: Counted, unscored: Callable[[], int]) -> Hold:
    def hold(kind: str) -> bool:
        if kind == KILL_WALLET:  # clients that pick the dead replica fail and retry
            mark = workload.progress()
            return workload.wait_until(
                lambda p: p.failed_attempts >= mark.failed_attempts + plan.observe,
                plan.hang_guard,
            )
        # Every fraud fault makes the wallet fail open: movements complete UNSCORED. Only
        # admins see a movement's fraud decision, so the ledger itself is counted.
        return _grew_by(unscored, plan.observe, plan.hang_guard)

    return hold


def _unscored_counter(database_url: str) -> tuple[Callable[[], int], Engine]:
    """How many movements the ledger holds that were committed without a fraud verdict."""
    engine = create_engine(database_url)
    query = text("SELECT count(*) FROM transactions WHERE fraud_decision = 'UNSCORED'")

    def count() -> int:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    return count, engine


def _grew_by(counter: Callable[[], int], count: int, ceiling: float) -> bool:
    """Whether `counter` grew by `count` from its first read within `ceiling` seconds (only
    a hang guard). A read that fails (the database restarting) counts as no change."""
    first: list[int] = []

    def grown() -> bool:
        try:
            current = counter()
        except SQLAlchemyError:
            return False
        first[:] = first or [current]
        return current - first[0] >= count

    return wait_for(grown, ceiling, interval=0.05)


def _acks(workload: Workload, count: int, ceiling: float) -> bool:
    mark = workload.progress().acked
    return workload.wait_until(lambda p: p.acked >= mark + count, ceiling)


def _drive(
    injector: FaultInjector,
    workload: Workload,
    duration: float,
    plan: Counted | None,
    unscored: Callable[[], int],
) -> dict[str, Any]:
    """Break things while the workload runs: for `duration` seconds, or by the plan."""
    if plan is None:
        injector.start(duration)
        time.sleep(duration)
        injector.stop()  # waits for the fault in progress, then heals everything
        return {}
    injector.run_counted(
        plan.kinds,
        _hold(workload, plan, unscored),
        lambda: _acks(workload, plan.ops_between, plan.hang_guard),
    )
    injector.heal()
    mark = workload.progress().acked
    if not _acks(workload, plan.ops_after_heal, plan.hang_guard):
        injector.errors.append("after the last heal: too few acknowledged operations (hang guard)")
    return {"acknowledged_after_last_heal": workload.progress().acked - mark}


def run_once(
    store: str,
    *,
    duration: float,
    seed: int,
    out: Path,
    users: int = 16,
    clients: int = 12,
    pg_restart: bool = True,
    keep_db: bool = False,
    fault_interval: tuple[float, float] = (1.5, 4.0),
    counted: Counted | None = None,
) -> dict[str, Any]:
    """One full run on one store; returns the summary dict. With `counted`, the run is
    paced by events (see `Counted`) and `duration` is ignored."""
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    code = snapshot_code(out / "code")
    pg_name = ""
    if store == "sqlite":
        url = f"sqlite:///{work / f'chaos-{seed}-{uuid.uuid4().hex[:6]}.db'}"
    else:
        pg_name = f"chaos_{seed}_{uuid.uuid4().hex[:8]}"
        create_database(PG_ADMIN_DSN, pg_name)
        url = PG_URL.format(name=pg_name)

    fraud_port, proxy_port = free_port(), free_port()
    fraud_addr = f"127.0.0.1:{fraud_port}"
    fraud = ServiceProcess(
        "fraud",
        "fraud_service",
        {
            "FRAUD_ADDR": fraud_addr,
            "FRAUD_DATABASE_URL": f"sqlite:///{work / 'fraud.db'}",
            "LOG_LEVEL": "warning",
            "FRAUD_GRACE_SECONDS": "1",
        },
        work,
        code,
    )
    proxy = FaultProxy(proxy_port, ("127.0.0.1", fraud_port))
    wallet_addrs = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    wallets = [
        ServiceProcess(
            f"wallet{i}",
            "wallet_service",
            {
                "APP_ENV": "test",
                "WALLET_ADDR": addr,
                "WALLET_DATABASE_URL": url,
                "JWT_SECRET_KEY": JWT_SECRET,
                "FRAUD_ADDR": proxy.address,
                "FRAUD_TIMEOUT_MS": "200",
                "FRAUD_FAIL_MODE": "open",
                "ADMIN_USERNAME": ADMIN_USERNAME,
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
                "WALLET_GRACE_SECONDS": "2",
                "LOG_LEVEL": "WARNING",
                "LOGIN_MAX_FAILURES": "1000",
                # One workload process registers and moves for every user: 0 turns limits off.
                "WALLET_REGISTER_RATE_LIMIT_PER_PEER": "0",
                "WALLET_LOGIN_RATE_LIMIT_PER_PEER": "0",
                "MONEY_RATE_LIMIT_PER_USER": "0",
            },
            work,
            code,
        )
        for i, addr in enumerate(wallet_addrs)
    ]
    injector = FaultInjector(
        seed=seed,
        wallets=wallets,
        wallet_addrs=wallet_addrs,
        fraud=fraud,
        fraud_addr=fraud_addr,
        proxy=proxy,
        pg_restart=pg_restart and store == "postgres",
        interval=fault_interval,
    )
    replicas = Replicas(wallet_addrs)
    workload = Workload(replicas, seed=seed, users=users, clients=clients)
    started = time.monotonic()
    summary: dict[str, Any] = {
        "store": store,
        "seed": seed,
        "duration_seconds": None if counted else duration,
        "faults_planned": counted.kinds if counted else None,
    }
    try:
        fraud.start()
        proxy.start()
        if not wait_serving(fraud_addr, 30):
            raise RuntimeError("fraud_service did not start")
        # The first replica runs the migrations alone; then the second joins.
        for wallet, addr in zip(wallets, wallet_addrs, strict=True):
            wallet.start()
            if not wait_serving(addr, 60):
                raise RuntimeError(f"{wallet.name} did not start; see {wallet.log_path}")
        workload.setup()
        workload.start()
        unscored, observer = _unscored_counter(url)
        try:
            driven = _drive(injector, workload, duration, counted, unscored)
        finally:
            observer.dispose()  # before the database is dropped
        workload.stop(timeout=workload.retry_budget + 30)
        queue = admin_queue(wallet_addrs[0], ADMIN_USERNAME, ADMIN_PASSWORD)
        exit_codes = [w.terminate() for w in wallets]
        fraud.terminate()
        report = check(url, workload.ops, queue)
        summary |= {
            "operations": workload.counts() | driven,
            "faults_injected": injector.counts(),
            "fault_errors": injector.errors,
            "fault_events": [asdict(e) for e in injector.events],
            "wallet_restarts": sum(w.starts - 1 for w in wallets),
            "wallet_exit_codes_on_sigterm": exit_codes,
            **report.as_dict(),
            "wall_seconds": round(time.monotonic() - started, 1),
        }
    finally:
        injector.stop()
        workload.stop(timeout=5)
        replicas.close()
        for process in (*wallets, fraud):
            if process.alive:
                process.terminate(timeout=5)
        proxy.close()
        if store == "postgres":
            ensure_postgres_running()
            if not keep_db and pg_name:
                _drop_database(pg_name)
    return summary


def _drop_database(name: str) -> None:
    for _ in range(20):
        try:
            drop_database(PG_ADMIN_DSN, name)
            return
        except psycopg.OperationalError:
            time.sleep(0.5)


def text_summary(summary: dict[str, Any]) -> str:
    ops = summary.get("operations", {})
    lines = [
        f"chaos run: store={summary['store']} seed={summary['seed']} "
        + (
            f"faults={summary['faults_planned']}"
            if summary.get("faults_planned")
            else f"duration={summary['duration_seconds']}s"
        )
        + f" (wall {summary.get('wall_seconds')}s)",
        f"  operations: attempted {ops.get('attempted')}, acknowledged {ops.get('acknowledged')}, "
        f"retried {ops.get('retried')}, failed {ops.get('failed_definitively')} "
        f"({ops.get('failure_reasons')}), unknown {ops.get('unknown_outcome')}",
        f"  attempt status codes: {ops.get('attempt_status_codes')}",
        f"  faults injected: {summary.get('faults_injected')}"
        + (f" (fault errors: {summary['fault_errors']})" if summary.get("fault_errors") else ""),
        f"  ledger: {summary.get('stats', {}).get('transactions')} transactions, "
        f"{summary.get('stats', {}).get('ledger_entries')} entries, currency totals "
        f"{summary.get('stats', {}).get('currency_totals')}, flagged "
        f"{summary.get('stats', {}).get('flagged')}, admin queue "
        f"{summary.get('stats', {}).get('admin_queue_size')}, decisions "
        f"{summary.get('stats', {}).get('fraud_decisions')}",
        f"  violations: {summary.get('violations_total')} {summary.get('violations') or ''}",
    ]
    for kind, examples in (summary.get("examples") or {}).items():
        for example in examples:
            lines.append(f"    {kind}: {example}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="chaos-"))
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    summaries = []
    for store in stores:
        counted = None
        if args.faults:
            pg_restart = store == "postgres" and not args.no_pg_restart
            kinds = counted_schedule(args.faults, args.seed, pg_restart)
            counted = Counted(kinds, ops_after_heal=args.ops_after_heal)
        log.info("chaos: %s, %s, seed %s -> %s", store, counted or args.duration, args.seed, out)
        summary = run_once(
            store,
            duration=args.duration,
            seed=args.seed,
            out=out / store,
            users=args.users,
            clients=args.clients,
            pg_restart=not args.no_pg_restart,
            keep_db=args.keep_db,
            counted=counted,
        )
        summaries.append(summary)
        print(text_summary(summary), flush=True)
    total = sum(int(s.get("violations_total", 1)) for s in summaries)
    result = {"runs": summaries, "violations_total": total}
    (out / "summary.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (out / "summary.txt").write_text("\n\n".join(text_summary(s) for s in summaries) + "\n")
    print(f"summary: {out / 'summary.json'} and {out / 'summary.txt'}; violations {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
