"""Turn one run's rows into results.json, results.md and throughput.png.

A row is one (system, layout, clients) cell. Ratios compare a row with the pgbench row
of the same layout and client count. A row whose correctness check failed keeps its
numbers but gets no ratio and is marked INVALID: a fast wrong run does not count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SYSTEM_LABELS = {
    "pgbench": "pgbench TPC-B (anchor)",
    "grpc-pg": "wallet gRPC, PostgreSQL, fraud on",
    "gateway-pg": "gateway REST+JWT -> wallet, PostgreSQL",
    "grpc-sqlite": "wallet gRPC, SQLite, fraud on",
    "bulk-pg": "wallet CreateTransfers, batches of 100, PostgreSQL, fraud on (ScoreBatch)",
}
SYSTEM_ORDER = list(SYSTEM_LABELS)
TARGET_P99_CLIENTS = 32


def _base_and_processes(system: str) -> tuple[str, int]:
    """`grpc-pg@2p` (bench.run.system_name) -> ("grpc-pg", 2); `grpc-pg` -> ("grpc-pg", 1)."""
    base, _, processes = system.partition("@")
    return base, int(processes.rstrip("p") or 1)


def system_label(system: str) -> str:
    base, processes = _base_and_processes(system)
    label = SYSTEM_LABELS.get(base, base)
    return label if processes == 1 else f"{label}, {processes} wallet processes"


def add_derived(rows: list[dict[str, Any]]) -> None:
    """CPU per 1,000 transfers, ratio to pgbench and to direct gRPC, in place."""
    by_key = {(r["system"], r["layout"], r["clients"]): r for r in rows}
    for row in rows:
        ok = row["transfers_ok"]
        row["cpu_seconds_per_1k"] = {
            name: (None if seconds is None or ok == 0 else round(seconds / ok * 1000, 3))
            for name, seconds in row["cpu_seconds"].items()
            if name != "machine"
        }
        anchor = by_key.get(("pgbench", row["layout"], row["clients"]))
        row["other_load_cpu_seconds"] = _other_load(row["cpu_seconds"])
        row["ratio_to_pgbench"] = _ratio(row, anchor)
        grpc = by_key.get(("grpc-pg", row["layout"], row["clients"]))
        row["ratio_to_grpc_pg"] = _ratio(row, grpc) if row["system"] == "gateway-pg" else None


def _other_load(cpu: dict[str, float | None]) -> float | None:
    """Busy CPU seconds of the machine in the window not spent by the measured processes
    (other people's jobs on a shared machine): the noise indicator of a row."""
    machine = cpu.get("machine")
    if machine is None:
        return None
    ours = sum(v for k, v in cpu.items() if k != "machine" and v is not None)
    return round(max(0.0, machine - ours), 2)


def _ratio(row: dict[str, Any], base: dict[str, Any] | None) -> float | None:
    if base is None or not row["valid"] or not base["valid"] or not base["tps"]:
        return None
    return round(float(row["tps"]) / float(base["tps"]), 3)


def headline(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, one line each, with the measured values."""
    lines = _ratio_lines(rows, "grpc-pg", "ratio_to_pgbench", "grpc-pg / pgbench", 0.5)
    for row in sorted(rows, key=_sort_key):
        if row["system"] == "grpc-pg" and row["clients"] == TARGET_P99_CLIENTS:
            p99 = row["latency"]["p99_ms"]
            if p99 is not None:
                verdict = "meets" if p99 < 50 else "misses"
                lines.append(
                    f"grpc-pg p99 at {TARGET_P99_CLIENTS} clients, {row['layout']}: "
                    f"{p99:.1f} ms ({verdict} the < 50 ms target)"
                )
    lines += _ratio_lines(
        rows, "bulk-pg", "ratio_to_pgbench", "bulk-pg / pgbench", 1.0, " transfers/s"
    )
    lines += _ratio_lines(rows, "gateway-pg", "ratio_to_grpc_pg", "gateway-pg / grpc-pg", 0.7)
    return lines


def _ratio_lines(
    rows: list[dict[str, Any]], system: str, key: str, label: str, target: float, unit: str = ""
) -> list[str]:
    """One line per `system` row with a `key` ratio: whether it meets `target` (at least)."""
    lines = []
    for row in sorted(rows, key=_sort_key):
        if row["system"] == system and row[key] is not None:
            verdict = "meets" if row[key] >= target else "misses"
            lines.append(
                f"{label}, {row['layout']}, {row['clients']} clients: "
                f"{row[key]:.2f}x{unit} ({verdict} the {target}x target)"
            )
    return lines


def _system_order(system: str) -> tuple[int, int]:
    base, processes = _base_and_processes(system)
    return (SYSTEM_ORDER.index(base) if base in SYSTEM_ORDER else 99, processes)


def _sort_key(row: dict[str, Any]) -> tuple[str, tuple[int, int], int]:
    return (row["layout"], _system_order(row["system"]), row["clients"])


def _per_second(seconds: float | None, row: dict[str, Any]) -> float | None:
    elapsed = row.get("elapsed_seconds")
    return None if seconds is None or not elapsed else seconds / elapsed


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(run: dict[str, Any]) -> str:
    rows = sorted(run["rows"], key=_sort_key)
    cfg = run["config"]
    out = [
        "# Transfers per second vs pgbench TPC-B",
        "",
        f"Run {run['started_at']} on {run['machine']['cpus']} CPUs, "
        f"PostgreSQL {run['machine'].get('postgres_version', '?')}; "
        f"{cfg['duration']} s timed after {cfg['warmup']} s warm-up per cell, seed {cfg['seed']}, "
        f"wallet workers {cfg['wallet_workers']}, DB pool {cfg['db_pool_size']}, "
        f"users: many={cfg['many_users']}, hot={cfg['hot_users']}"
        + (" (SMOKE: numbers mean nothing)" if cfg["smoke"] else "")
        + ".",
        "",
        "Ratio = the row's transfers/s over pgbench's TPC-B transactions/s at the same "
        "layout and client count. CPU = CPU seconds per 1,000 transfers during the timed window "
        "(postgres = every process of the server, which other jobs may share; "
        "client = the load generator or pgbench). "
        "Latencies are of successful calls, in ms (bulk-pg: of whole CreateTransfers calls "
        "of 100 transfers; its tps counts transfers). Other load = CPU cores busy with processes "
        "outside the benchmark during the window (a shared machine's noise; 2.0 = both cores).",
        "",
        "## Targets",
        "",
        *[f"- {line}" for line in headline(run["rows"])],
        "",
        "## All cells",
        "",
        "| layout | system | clients | tps | x pgbench | p50 | p95 | p99 | ok | errors "
        "| flagged | CPU s/1k: wallet / gateway / fraud / postgres / client | other load "
        "| ledger |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|",
    ]
    for r in rows:
        lat = r["latency"]
        cpu = r["cpu_seconds_per_1k"]
        client = cpu.get("loadgen", cpu.get("pgbench"))
        cpu_text = " / ".join(
            _fmt(v, 2)
            for v in (cpu.get("wallet"), cpu.get("gateway"), cpu.get("fraud"), cpu.get("postgres"))
        )
        errors = ", ".join(f"{k}: {v}" for k, v in r["codes"].items() if k != "OK") or "0"
        ratio = r["ratio_to_pgbench"]
        out.append(
            f"| {r['layout']} | {r['system']} | {r['clients']} | {r['tps']:.0f} "
            f"| {'-' if ratio is None else f'{ratio:.2f}x'} "
            f"| {_fmt(lat['p50_ms'])} | {_fmt(lat['p95_ms'])} | {_fmt(lat['p99_ms'])} "
            f"| {r['transfers_ok']} | {errors} | {r['flagged']} | {cpu_text} / {_fmt(client, 2)} "
            f"| {_fmt(_per_second(r['other_load_cpu_seconds'], r), 2)} "
            f"| {'ok' if r['valid'] else 'INVALID: ' + '; '.join(r['ledger_violations'])[:200]} |"
        )
    out += ["", "Systems:", ""]
    present = sorted({r["system"] for r in rows} - set(SYSTEM_LABELS), key=_system_order)
    out += [f"- `{name}`: {system_label(name)}" for name in [*SYSTEM_LABELS, *present]]
    out.append("")
    return "\n".join(out)


def chart(run: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layouts = list(dict.fromkeys(r["layout"] for r in run["rows"]))
    fig, axes = plt.subplots(1, len(layouts), figsize=(6 * len(layouts), 4.5), squeeze=False)
    for ax, layout in zip(axes[0], layouts, strict=True):
        for system in sorted({r["system"] for r in run["rows"]}, key=_system_order):
            points = sorted(
                (r["clients"], r["tps"])
                for r in run["rows"]
                if r["system"] == system and r["layout"] == layout and r["valid"]
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=system_label(system))
        ax.set_xscale("log", base=2)
        clients = sorted({r["clients"] for r in run["rows"]})
        ax.set_xticks(clients, [str(c) for c in clients])
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("transactions per second (log)")
        ax.set_title(f"layout: {layout}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Transfers/s vs pgbench TPC-B ({run['machine']['cpus']} CPUs, "
        f"{run['config']['duration']} s per point)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(run: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    add_derived(run["rows"])
    run["headline"] = headline(run["rows"])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "chart": out_dir / "throughput.png",
    }
    paths["json"].write_text(json.dumps(run, indent=2) + "\n")
    paths["markdown"].write_text(markdown(run))
    chart(run, paths["chart"])
    return paths
