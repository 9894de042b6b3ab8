"""`python -m bench.run --smoke` keeps working: every system produces rows, money moved,
the books balance, and the report files exist. No timing is asserted: the smoke numbers
come from one-second windows on a shared machine and mean nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = {"pgbench", "grpc-pg", "gateway-pg", "grpc-sqlite", "bulk-pg"}
BENCH = [sys.executable, "-m", "bench.run"]
PG_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _require_postgres_and_pgbench() -> None:
    in_ci = os.environ.get("CI", "").lower() == "true"
    problem = None
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            pass
    except psycopg.Error:
        problem = f"PostgreSQL does not answer at {PG_DSN}"
    if problem is None and not (shutil.which("pgbench") or Path("/usr/bin/pgbench").exists()):
        problem = "pgbench is not installed"
    if problem:
        if in_ci:
            pytest.fail(problem)
        pytest.skip(problem)


def _bench(*args: str) -> None:
    """Runs `python -m bench.run *args` to the end; its stderr tail if it fails."""
    done = subprocess.run(
        [*BENCH, *args], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.postgres
def test_smoke_run_reports_every_system_with_sound_books(tmp_path: Path) -> None:
    _require_postgres_and_pgbench()
    out = tmp_path / "results"
    _bench("--smoke", "--out", str(out))

    run = json.loads((out / "results.json").read_text())
    rows = run["rows"]
    assert run["config"]["smoke"] is True
    assert {r["system"] for r in rows} == SYSTEMS
    for system in SYSTEMS:
        for layout in ("many", "hot"):
            assert any(r["system"] == system and r["layout"] == layout for r in rows), (
                system,
                layout,
            )
    for row in rows:
        label = f"{row['system']}/{row['layout']}/c{row['clients']}"
        assert "failure" not in row, (label, row.get("failure"))
        assert row["transfers_ok"] > 0, label
        assert row["ledger_violations"] == [], (label, row["ledger_violations"])
        assert row["valid"] is True, label
        assert row["latency"]["p99_ms"] is not None, label
        if row["system"] != "pgbench":
            # Every transfer a client saw succeed is in the ledger exactly once.
            assert row["db_transfers"] == row["client_ok_total"], label
            assert row["ratio_to_pgbench"] is not None, label
    markdown = (out / "results.md").read_text()
    assert "| layout | system | clients |" in markdown
    assert "grpc-sqlite" in markdown
    png = (out / "throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.postgres
def test_bulk_smoke_moves_money_in_batches_of_100_with_sound_books(tmp_path: Path) -> None:
    """bulk-pg alone (no pgbench needed): CreateTransfers calls of 100 items, every
    transfer the clients saw succeed is in the ledger once, the books balance."""
    _require_postgres_and_pgbench()
    out = tmp_path / "results"
    _bench("--smoke", "--systems", "bulk-pg", "--layouts", "many", "--out", str(out))
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert row["system"] == "bulk-pg" and row["batch_size"] == 100
    assert row["valid"] is True and row["ledger_violations"] == []
    assert row["transfers_ok"] > 0
    assert row["db_transfers"] == row["client_ok_total"]
    # Latencies are per call: far fewer calls than transfers.
    assert row["transfers_ok"] >= 100


@pytest.mark.postgres
def test_two_wallet_processes_are_a_cell_of_their_own_with_the_cpu_of_both(
    tmp_path: Path,
) -> None:
    """--wallet-processes 1,2: grpc-pg runs once per value; the 2-process cell is
    `grpc-pg@2p`, its wallet CPU is the supervisor's tree (both workers), its books sound."""
    _require_postgres_and_pgbench()
    out = tmp_path / "results"
    args = ["--smoke", "--systems", "grpc-pg", "--layouts", "many", "--wallet-processes", "1,2"]
    done = subprocess.run(
        [*BENCH, *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads((out / "results.json").read_text())["rows"]
    by_system = {r["system"]: r for r in rows}
    assert set(by_system) == {"grpc-pg", "grpc-pg@2p"}
    assert [by_system[s]["wallet_processes"] for s in ("grpc-pg", "grpc-pg@2p")] == [1, 2]
    for row in rows:
        assert row["valid"] is True and row["ledger_violations"] == [], row["system"]
        assert row["db_transfers"] == row["client_ok_total"], row["system"]
        assert row["cpu_seconds"]["wallet"] is not None, row["system"]
    assert "2 wallet processes" in (out / "results.md").read_text()
