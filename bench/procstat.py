"""CPU time of processes from /proc: `utime + stime` (and reaped children for PostgreSQL).

Linux only. Every reader returns None instead of raising when /proc cannot tell (another
OS, a process that is gone, a PostgreSQL server on another host), so a benchmark still
runs and reports the CPU column as missing.
"""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid` (all its threads), in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state=0, ppid=1, ..., utime=11, stime=12, cutime=13, cstime=14.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_pid(int(entry.name)) == pid:
            found.append(int(entry.name))
    return found


def tree_cpu_seconds(root_pid: int) -> float | None:
    """CPU of a server that forks a process per connection (the PostgreSQL postmaster):
    the root, its live children, and the children it already reaped (cutime + cstime).
    A difference of two readings counts every backend that ran in between."""
    fields = _stat_fields(root_pid)
    if fields is None:
        return None
    total = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    for child in children_of(root_pid):
        seconds = process_cpu_seconds(child)
        if seconds is not None:
            total += seconds
    return total


def machine_busy_seconds() -> float | None:
    """Non-idle CPU time of the whole machine, summed over CPUs (from /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    values = [int(v) for v in first[1:9]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS


def cpu_snapshot(pids: dict[str, int], trees: dict[str, int]) -> dict[str, float | None]:
    """One reading per named process (`pids`) and per named process tree (`trees`), and
    `machine`: the whole machine's busy time, so that load from elsewhere is visible."""
    snap: dict[str, float | None] = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    snap |= {name: tree_cpu_seconds(pid) for name, pid in trees.items()}
    snap["machine"] = machine_busy_seconds()
    return snap


def cpu_delta(
    before: dict[str, float | None], after: dict[str, float | None]
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, start in before.items():
        end = after.get(name)
        out[name] = None if start is None or end is None else round(end - start, 3)
    return out
