"""The anchor: PostgreSQL's own TPC-B-like benchmark (pgbench's default script).

One pgbench database per layout: `many` at scale = the largest client count (one branch
row per client, as TPC-B prescribes: little contention); `hot` at scale 1 (every
transaction updates the single branch row: heavy contention). Each cell runs a warm-up
pgbench, then the timed pgbench with a per-transaction log (`-l`) from which the latency
percentiles are computed, exactly like the wallet rows.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.loadgen import summarize_latencies
from bench.procstat import cpu_delta, cpu_snapshot
from common.pg_databases import create_database, drop_database

PGBENCH = shutil.which("pgbench") or "/usr/bin/pgbench"


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str

    def dsn(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def sqlalchemy_url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> None:
        create_database(self.dsn("postgres"), name)

    def drop_database(self, name: str) -> None:
        drop_database(self.dsn("postgres"), name)

    def postmaster_pid(self) -> int | None:
        """The server's root process, when it runs on this machine (for CPU readings)."""
        from bench.procstat import parent_pid

        with psycopg.connect(self.dsn("postgres")) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
        return parent_pid(int(row[0])) if row else None


def _base_args(server: PgServer) -> list[str]:
    return [PGBENCH, "-h", server.host, "-p", str(server.port), "-U", server.user]


def initialize(server: PgServer, dbname: str, scale: int) -> None:
    subprocess.run(
        [*_base_args(server), "-i", "-q", "-I", "dtGvp", "-s", str(scale), dbname],
        check=True,
        capture_output=True,
    )


def _threads(clients: int) -> int:
    return 2 if clients >= 2 and clients % 2 == 0 else 1  # -j must divide -c; 2 cores


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout + done.stderr


def _read_log_latencies(log_dir: Path) -> list[float]:
    """Seconds per transaction from pgbench's per-transaction logs (3rd field, in us)."""
    latencies: list[float] = []
    for path in log_dir.glob("pgbench_log*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1_000_000)
    return latencies


def _number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def balance_sums(server: PgServer, dbname: str) -> tuple[int, int, int, int]:
    """Sums of (accounts, branches, tellers, history deltas)."""
    with psycopg.connect(server.dsn(dbname)) as conn:
        row = conn.execute(
            "SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts),"
            " (SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches),"
            " (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers),"
            " (SELECT coalesce(sum(delta), 0) FROM pgbench_history)"
        ).fetchone()
    assert row is not None
    accounts, branches, tellers, history = (int(v) for v in row)
    return accounts, branches, tellers, history


def ledger_violations(
    before: tuple[int, int, int, int], after: tuple[int, int, int, int]
) -> list[str]:
    """TPC-B's consistency over the timed run: the three balance tables agree, and they
    moved by exactly the history rows written. (Only the timed run is checked whole: a
    plain pgbench run truncates the history before it starts.)"""
    accounts, branches, tellers, history = after
    problems = []
    if not accounts == branches == tellers:
        problems.append(f"sums differ: accounts {accounts}, branches {branches}, tellers {tellers}")
    moved, logged = accounts - before[0], history - before[3]
    if moved != logged:
        problems.append(f"balances moved by {moved} but the history logs {logged}")
    return problems


def run_cell(
    server: PgServer,
    dbname: str,
    *,
    clients: int,
    duration: int,
    warmup: int,
    seed: int,
    work_dir: Path,
    trees: dict[str, int],
) -> dict[str, Any]:
    common = ["-c", str(clients), "-j", str(_threads(clients)), f"--random-seed={seed}"]
    if warmup > 0:  # also vacuums and truncates the history, as a plain pgbench run does
        _run([*_base_args(server), *common, "-T", str(warmup), dbname])
    else:
        _run([*_base_args(server), *common, "-t", "1", dbname])
    log_dir = work_dir / f"pgbench-c{clients}"
    log_dir.mkdir(parents=True, exist_ok=True)
    sums_before = balance_sums(server, dbname)
    before = cpu_snapshot({}, trees)
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = _run(
        [
            *_base_args(server),
            *common,
            "-n",  # vacuumed by the warm-up run
            "-T",
            str(duration),
            "-l",
            f"--log-prefix={log_dir / 'pgbench_log'}",
            dbname,
        ]
    )
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu_delta(before, cpu_snapshot({}, trees))
    cpu["pgbench"] = round(
        (client_after.ru_utime + client_after.ru_stime)
        - (client_before.ru_utime + client_before.ru_stime),
        3,
    )
    violations = ledger_violations(sums_before, balance_sums(server, dbname))
    latencies = _read_log_latencies(log_dir)
    shutil.rmtree(log_dir, ignore_errors=True)
    tps = _number(r"tps = ([0-9.]+) \(without initial connection time\)", output) or 0.0
    processed = int(_number(r"number of transactions actually processed: (\d+)", output) or 0)
    failed = int(_number(r"number of failed transactions: (\d+)", output) or 0)
    codes = {"OK": processed} | ({"failed": failed} if failed else {})
    return {
        "elapsed_seconds": float(duration),
        "transfers_ok": processed,
        "tps": round(tps, 2),
        "latency": summarize_latencies(latencies),
        "codes": codes,
        "errors": failed,
        "flagged": 0,
        "cpu_seconds": cpu,
        "ledger_violations": violations,
    }
