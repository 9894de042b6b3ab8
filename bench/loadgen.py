"""The load generator: a separate process that drives Transfer calls at a fixed concurrency.

    python -m bench.loadgen SPEC.json RESULT.json

SPEC (written by bench.run) names the target (`grpc` host:port of the wallet or `http`
base URL of the gateway), the number of concurrent clients, the account layout, the
timings, the seed and the process ids whose CPU time is read around the timed window.

Phases, in this order:
1. setup (not timed): register and log in every user, fund every account with deposits;
2. warm-up: `clients` closed-loop workers run transfers, nothing is recorded;
3. timed window of `duration` seconds, stretched until at least one call has completed in
   it (a loaded machine gets a longer window, never an empty one; tps divides by the real
   length): every completed call's latency and result is recorded, CPU time of every named
   process is read at its start and at its end;
4. drain: the workers finish the call they are in and stop.

Each transfer picks a random sender (whose token it uses) and a different random
recipient among the layout's users, and an amount of 0.01-1.00 USD, from a
`random.Random` seeded per worker, with a fresh idempotency key (as real clients send).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from bench import wrk_driver
from bench.procstat import cpu_delta, cpu_snapshot
from wallet_client.errors import decode_rpc_error

PASSWORD = "bench-password-123"
CURRENCY = "USD"
SETUP_CONCURRENCY = 8
RPC_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class TransferResult:
    ok: bool
    code: str  # "OK", or the error: gRPC status / HTTP status, plus the stable reason
    flagged: bool = False


class Target(ABC):
    """One way of reaching the wallet: gRPC straight to it, or REST through the gateway."""

    @abstractmethod
    async def register(self, username: str) -> None: ...

    @abstractmethod
    async def login(self, username: str) -> str: ...

    @abstractmethod
    async def deposit(self, token: str, amount: str) -> None: ...

    @abstractmethod
    async def transfer(self, token: str, to_username: str, amount: str, key: str) -> TransferResult:
        """Never raises for an answer of the service: the error becomes the result code."""

    @abstractmethod
    async def close(self) -> None: ...


class GrpcTarget(Target):
    def __init__(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = wallet_pb2_grpc.WalletServiceStub(self._channel)

    @staticmethod
    def _auth(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),)

    async def register(self, username: str) -> None:
        request = wallet_pb2.RegisterRequest(username=username, password=PASSWORD)
        await self._stub.Register(request, timeout=RPC_TIMEOUT_SECONDS)

    async def login(self, username: str) -> str:
        request = wallet_pb2.LoginRequest(username=username, password=PASSWORD)
        reply = await self._stub.Login(request, timeout=RPC_TIMEOUT_SECONDS)
        return str(reply.access_token)

    async def deposit(self, token: str, amount: str) -> None:
        request = wallet_pb2.DepositRequest(amount=amount, currency=CURRENCY)
        await self._stub.Deposit(request, metadata=self._auth(token), timeout=RPC_TIMEOUT_SECONDS)

    async def transfer(self, token: str, to_username: str, amount: str, key: str) -> TransferResult:
        request = wallet_pb2.TransferRequest(
            to_username=to_username, amount=amount, currency=CURRENCY, idempotency_key=key
        )
        try:
            reply = await self._stub.Transfer(
                request, metadata=self._auth(token), timeout=RPC_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            return TransferResult(False, _grpc_error_code(exc))
        return TransferResult(True, "OK", bool(reply.transaction.flagged))

    async def transfer_batch(
        self, token: str, items: list[tuple[str, str, str]]
    ) -> list[TransferResult]:
        """One CreateTransfers (INDEPENDENT) of (to_username, amount, key) items; a failed
        call is one failed result per item."""
        request = wallet_pb2.CreateTransfersRequest(
            mode=wallet_pb2.INDEPENDENT,
            items=[
                wallet_pb2.TransferItem(
                    to_username=to, amount=amount, currency=CURRENCY, idempotency_key=key
                )
                for to, amount, key in items
            ],
        )
        try:
            reply = await self._stub.CreateTransfers(
                request, metadata=self._auth(token), timeout=RPC_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            return [TransferResult(False, _grpc_error_code(exc))] * len(items)
        return [
            TransferResult(False, f"{r.error_status}/{r.error_code}")
            if r.error_code
            else TransferResult(True, "OK", bool(r.movement.transaction.flagged))
            for r in reply.results
        ]

    async def close(self) -> None:
        await self._channel.close(None)


def _grpc_error_code(exc: grpc.aio.AioRpcError) -> str:
    decoded = decode_rpc_error(exc)
    return f"{decoded.code.name}/{decoded.reason}" if decoded.reason else decoded.code.name


class HttpTarget(Target):
    def __init__(self, base_url: str, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._client = httpx.AsyncClient(
            base_url=base_url, limits=limits, timeout=RPC_TIMEOUT_SECONDS
        )

    @staticmethod
    def _auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def _post(self, path: str, body: dict[str, str], headers: dict[str, str]) -> Any:
        response = await self._client.post(path, json=body, headers=headers)
        if response.status_code >= 400:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:200]}")
        return response.json()

    async def register(self, username: str) -> None:
        await self._post("/register", {"username": username, "password": PASSWORD}, {})

    async def login(self, username: str) -> str:
        body = await self._post("/login", {"username": username, "password": PASSWORD}, {})
        return str(body["access_token"])

    async def deposit(self, token: str, amount: str) -> None:
        await self._post("/deposit", {"amount": amount, "currency": CURRENCY}, self._auth(token))

    async def transfer(self, token: str, to_username: str, amount: str, key: str) -> TransferResult:
        headers = self._auth(token) | {"Idempotency-Key": key}
        body = {"to_username": to_username, "amount": amount, "currency": CURRENCY}
        try:
            response = await self._client.post("/transfer", json=body, headers=headers)
        except httpx.HTTPError as exc:
            return TransferResult(False, f"client/{type(exc).__name__}")
        if response.status_code == 201:
            return TransferResult(True, "OK", bool(response.json().get("flagged")))
        try:
            reason = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            reason = "unparsed"
        return TransferResult(False, f"HTTP {response.status_code}/{reason}")

    async def close(self) -> None:
        await self._client.aclose()


@dataclass(frozen=True)
class Spec:
    kind: str  # grpc | http
    target: str
    clients: int
    users: int
    duration: float
    warmup: float
    seed: int
    run_id: str
    fund_amount: str
    fund_deposits: int
    pids: dict[str, int] = field(default_factory=dict)
    trees: dict[str, int] = field(default_factory=dict)
    # name -> [pid, output path]: py-spy records these processes during the timed window
    profile: dict[str, list[Any]] = field(default_factory=dict)
    profile_flags: list[str] = field(default_factory=list)  # e.g. ["--gil"] or ["--idle"]
    http_driver: str = "httpx"  # httpx | wrk (for kind == "http")
    batch_size: int = 1  # > 1: each call is one CreateTransfers of this many items (grpc)

    @classmethod
    def load(cls, path: Path) -> Spec:
        return cls(**json.loads(path.read_text()))


@dataclass
class Window:
    """Shared by the workers: whether to record, and what was recorded."""

    recording: bool = False
    stopping: bool = False
    latencies: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    flagged: int = 0
    ok_total: int = 0  # every successful transfer, warm-up and drain included
    transfers_ok: int = 0  # bulk only: transfers in the window (latencies are per call)
    sent_total: int = 0
    # Set by the first call that completes inside the window: the window ends after its
    # duration AND at least one completed call, so a slow (loaded) machine gets a longer
    # window instead of an empty one.
    first_completed: asyncio.Event = field(default_factory=asyncio.Event)


def _amount(rng: random.Random) -> str:
    cents = rng.randint(1, 100)
    return f"{cents // 100}.{cents % 100:02d}"


async def _worker(
    index: int, spec: Spec, target: Target, users: list[tuple[str, str]], window: Window
) -> None:
    rng = random.Random(spec.seed * 1_000_003 + index)
    count = len(users)
    while not window.stopping:
        sender = rng.randrange(count)
        recipient = (sender + rng.randrange(1, count)) % count  # never the sender
        key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        amount = _amount(rng)
        started = time.perf_counter()
        result = await target.transfer(users[sender][1], users[recipient][0], amount, key)
        elapsed = time.perf_counter() - started
        window.sent_total += 1
        window.ok_total += result.ok
        if window.recording:
            window.first_completed.set()
            window.codes[result.code] += 1
            if result.ok:
                window.latencies.append(elapsed)
                window.flagged += result.flagged


async def _bulk_worker(
    index: int, spec: Spec, target: GrpcTarget, users: list[tuple[str, str]], window: Window
) -> None:
    """One CreateTransfers of `spec.batch_size` items per call, one random sender per call.
    Latencies are per call (a batch); counts are per transfer."""
    rng = random.Random(spec.seed * 1_000_003 + index)
    count = len(users)
    while not window.stopping:
        sender = rng.randrange(count)
        items = [
            (
                users[(sender + rng.randrange(1, count)) % count][0],
                _amount(rng),
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            )
            for _ in range(spec.batch_size)
        ]
        started = time.perf_counter()
        results = await target.transfer_batch(users[sender][1], items)
        elapsed = time.perf_counter() - started
        oks = sum(r.ok for r in results)
        window.sent_total += len(results)
        window.ok_total += oks
        if window.recording:
            window.first_completed.set()
            window.latencies.append(elapsed)
            window.transfers_ok += oks
            for result in results:
                window.codes[result.code] += 1
                window.flagged += result.flagged


async def _bounded(limit: int, jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(run(job) for job in jobs))


async def _setup(spec: Spec, target: Target) -> list[tuple[str, str]]:
    names = [f"b{spec.run_id}_{i:05d}" for i in range(spec.users)]
    await _bounded(SETUP_CONCURRENCY, [target.register(name) for name in names])
    tokens = await _bounded(SETUP_CONCURRENCY, [target.login(name) for name in names])
    deposits = [
        target.deposit(token, spec.fund_amount)
        for token in tokens
        for _ in range(spec.fund_deposits)
    ]
    await _bounded(SETUP_CONCURRENCY, deposits)
    return list(zip(names, tokens, strict=True))


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def summarize_latencies(latencies_seconds: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max/mean in milliseconds (nearest-rank percentiles)."""
    values = sorted(latencies_seconds)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "p50_ms": ms(_percentile(values, 50)),
        "p95_ms": ms(_percentile(values, 95)),
        "p99_ms": ms(_percentile(values, 99)),
        "max_ms": ms(values[-1] if values else None),
        "mean_ms": ms(sum(values) / len(values) if values else None),
    }


async def _start_profilers(spec: Spec) -> list[asyncio.subprocess.Process]:
    """py-spy (raw collapsed stacks, on-CPU samples) on each named process for the window."""
    if not spec.profile:
        return []
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return [
        await asyncio.create_subprocess_exec(
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(spec.duration))),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            out,
            *spec.profile_flags,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for pid, out in spec.profile.values()
    ]


async def run_with_wrk(spec: Spec) -> dict[str, Any]:
    """Setup through the Python client (not timed), then warm-up and window driven by wrk."""
    target = HttpTarget(spec.target, SETUP_CONCURRENCY)
    try:
        setup_started = time.perf_counter()
        users = await _setup(spec, target)
        setup_seconds = time.perf_counter() - setup_started
    finally:
        await target.close()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "transfer.lua"
        wrk_driver.write_script(script, users, spec.seed)
        warm_ok, runs = 0, 1
        if spec.warmup >= 1:
            warm = await wrk_driver.run_wrk(
                spec.target, script, clients=spec.clients, seconds=spec.warmup
            )
            warm_ok, runs = warm.ok, 2
        pids = spec.pids | {"loadgen": os.getpid()}
        before = cpu_snapshot(pids, spec.trees)
        timed = await wrk_driver.run_wrk(
            spec.target, script, clients=spec.clients, seconds=spec.duration
        )
        after = cpu_snapshot(pids, spec.trees)
    cpu = cpu_delta(before, after)
    cpu["loadgen"] = round((cpu.get("loadgen") or 0.0) + timed.cpu_seconds, 3)  # wrk is our child
    codes = {"OK": timed.ok} | ({"HTTP non-201": timed.failed} if timed.failed else {})
    if timed.socket_errors:
        codes["socket errors"] = timed.socket_errors
    return {
        "driver": "wrk",
        "elapsed_seconds": round(timed.seconds, 3),
        "setup_seconds": round(setup_seconds, 3),
        "transfers_ok": timed.ok,
        "tps": round(timed.ok / timed.seconds, 2),
        "latency": timed.latency_ms,  # wrk's, over every response of the window
        "codes": codes,
        "errors": timed.failed + timed.socket_errors,
        "flagged": timed.flagged,
        "cpu_seconds": cpu,
        "client_ok_total": warm_ok + timed.ok,
        # wrk stops with up to one request in flight per connection, which the server may
        # still complete: the books may hold that many more transfers than wrk counted.
        "client_ok_slack": runs * spec.clients,
    }


async def run(spec: Spec) -> dict[str, Any]:
    if spec.kind == "http" and spec.http_driver == "wrk":
        return await run_with_wrk(spec)
    target: Target
    if spec.kind == "grpc":
        target = GrpcTarget(spec.target)
    else:
        target = HttpTarget(spec.target, spec.clients)
    try:
        setup_started = time.perf_counter()
        users = await _setup(spec, target)
        setup_seconds = time.perf_counter() - setup_started
        window = Window()
        bulk = spec.batch_size > 1 and isinstance(target, GrpcTarget)
        workers = [
            asyncio.create_task(
                _bulk_worker(i, spec, target, users, window)  # type: ignore[arg-type]
                if bulk
                else _worker(i, spec, target, users, window)
            )
            for i in range(spec.clients)
        ]
        await asyncio.sleep(spec.warmup)
        pids = spec.pids | {"loadgen": os.getpid()}
        before = cpu_snapshot(pids, spec.trees)
        profilers = await _start_profilers(spec)
        window.recording = True
        started = time.perf_counter()
        await asyncio.sleep(spec.duration)
        await window.first_completed.wait()
        window.recording = False
        elapsed = time.perf_counter() - started
        after = cpu_snapshot(pids, spec.trees)
        for profiler in profilers:
            await profiler.wait()
        window.stopping = True
        await asyncio.gather(*workers)
    finally:
        await target.close()
    ok = window.transfers_ok if bulk else len(window.latencies)
    return {
        "batch_size": spec.batch_size if bulk else 1,
        "elapsed_seconds": round(elapsed, 3),
        "setup_seconds": round(setup_seconds, 3),
        "transfers_ok": ok,
        "tps": round(ok / elapsed, 2),
        "latency": summarize_latencies(window.latencies),
        "codes": dict(sorted(window.codes.items())),
        "errors": sum(n for code, n in window.codes.items() if code != "OK"),
        "flagged": window.flagged,
        "cpu_seconds": cpu_delta(before, after),
        "client_ok_total": window.ok_total,
        "client_sent_total": window.sent_total,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.loadgen SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = Spec.load(Path(args[0]))
    result = asyncio.run(run(spec))
    Path(args[1]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
