"""Drive the gateway's POST /transfer with `wrk` (C, epoll) instead of a Python HTTP client.

At 32+ clients the httpx load generator spent 3-6 CPU-ms per request on the same 2 cores as
the gateway it measured; wrk spends a small fraction of that, so the gateway rows measure the
gateway. The Lua script picks a random sender (its token) and another recipient per request,
sends a fresh Idempotency-Key, and counts 201s and flagged transfers per thread.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = r"""
local users = %(users)s
local seed = %(seed)d
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  run_label = args[1]  -- each run's keys are its own: a reused key would replay, not move
  math.randomseed(seed * 1000003 + tid)
  ok, flagged, failed, sent = 0, 0, 0, 0
end

function request()
  local n = #users
  local s = math.random(n)
  local r = ((s - 1 + math.random(n - 1)) %% n) + 1
  sent = sent + 1
  local cents = math.random(100)
  local body = string.format('{"to_username":"%%s","amount":"%%d.%%02d","currency":"USD"}',
    users[r][1], math.floor(cents / 100), cents %% 100)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. users[s][2],
    ["Idempotency-Key"] = string.format("wrk-%%s-%%d-%%d", run_label, tid, sent),
  }
  return wrk.format("POST", "/transfer", headers, body)
end

function response(status, headers, body)
  if status == 201 then
    ok = ok + 1
    if string.find(body, '"flagged":true', 1, true) then flagged = flagged + 1 end
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local totals = {ok = 0, flagged = 0, failed = 0}
  for _, t in ipairs(threads) do
    totals.ok = totals.ok + t:get("ok")
    totals.flagged = totals.flagged + t:get("flagged")
    totals.failed = totals.failed + t:get("failed")
  end
  io.write(string.format(
    'WRK_RESULT {"ok":%%d,"flagged":%%d,"failed":%%d,"requests":%%d,"duration_us":%%d,' ..
    '"p50_us":%%d,"p95_us":%%d,"p99_us":%%d,"max_us":%%d,"mean_us":%%f,' ..
    '"socket_errors":%%d}\n',
    totals.ok, totals.flagged, totals.failed, summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


@dataclass(frozen=True)
class WrkRun:
    ok: int
    flagged: int
    failed: int
    requests: int
    seconds: float
    latency_ms: dict[str, float | None]
    socket_errors: int
    cpu_seconds: float


def write_script(path: Path, users: list[tuple[str, str]], seed: int) -> None:
    table = "{" + ",".join(f'{{"{name}","{token}"}}' for name, token in users) + "}"
    path.write_text(_SCRIPT % {"users": table, "seed": seed})


async def run_wrk(base_url: str, script: Path, *, clients: int, seconds: float) -> WrkRun:
    """One wrk run of `seconds` with `clients` connections; CPU is wrk's own (rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "-t",
        str(min(2, clients)),
        "-c",
        str(clients),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        base_url,
        "--",
        uuid.uuid4().hex[:12],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = output.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text[-2000:]}")
    raw: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))

    def ms(us: float) -> float:
        return round(us / 1000, 3)

    return WrkRun(
        ok=int(raw["ok"]),
        flagged=int(raw["flagged"]),
        failed=int(raw["failed"]),
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        latency_ms={
            "p50_ms": ms(raw["p50_us"]),
            "p95_ms": ms(raw["p95_us"]),
            "p99_ms": ms(raw["p99_us"]),
            "max_ms": ms(raw["max_us"]),
            "mean_ms": ms(raw["mean_us"]),
        },
        socket_errors=int(raw["socket_errors"]),
        cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )
