"""The seeded fault injector: kills and restarts wallet replicas, stops and restarts
fraud_service, freezes it (SIGSTOP), delays or drops its traffic at the proxy, and on
PostgreSQL restarts the database server once.

Two ways to drive it. `start(duration)` (the long `make chaos` run) holds each fault for a
seeded random span. `run_counted(kinds, hold, settle)` (the smoke test) holds each fault
until the workload has *observed* it (`hold` returns once enough client attempts failed or
were scored UNSCORED), so the run does not depend on how fast the machine is."""

from __future__ import annotations

import contextlib
import logging
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaos.procs import ServiceProcess, wait_serving
from chaos.proxy import FaultProxy

log = logging.getLogger("chaos.faults")

KILL_WALLET = "wallet_kill9_restart"
FRAUD_RESTART = "fraud_stop_restart"
FRAUD_FREEZE = "fraud_sigstop"
FRAUD_DELAY = "fraud_delay_beyond_deadline"
FRAUD_DROP = "fraud_connection_drop"
PG_RESTART = "postgres_restart"
BASE_KINDS = (KILL_WALLET, FRAUD_RESTART, FRAUD_FREEZE, FRAUD_DELAY, FRAUD_DROP)


def pg_cluster_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir())
    return versions[-1]


def restart_postgres() -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", pg_cluster_version(), "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def ensure_postgres_running() -> None:
    status = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", pg_cluster_version(), "main", "status"],
        capture_output=True,
        timeout=30,
    )
    if status.returncode != 0:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", pg_cluster_version(), "main", "start"],
            capture_output=True,
            timeout=120,
        )


@dataclass
class FaultEvent:
    kind: str
    at: float  # seconds since the injector started
    target: str
    duration: float
    detail: str = ""
    observed: bool = True  # counted mode: the workload saw the fault before it was healed


@dataclass
class ActiveFault:
    """A fault in place; `end()` undoes it and returns a note for the event's detail."""

    target: str
    detail: str
    end: Callable[[], str]


# How long the duration-driven run holds each kind (seconds, seeded uniform).
SPANS: dict[str, tuple[float, float]] = {
    KILL_WALLET: (0.3, 2.0),
    FRAUD_RESTART: (0.5, 3.0),
    FRAUD_FREEZE: (0.5, 2.5),
    FRAUD_DELAY: (1.0, 3.0),
    FRAUD_DROP: (0.5, 2.0),
    PG_RESTART: (0.0, 0.0),
}

Hold = Callable[[str], bool]
"""Blocks while the fault `kind` is in place until the workload has observed it; returns
False when only the hang guard ended the wait."""


def counted_schedule(faults: int, seed: int, pg_restart: bool = False) -> list[str]:
    """`faults` kinds for the count-driven run: a wallet kill -9 and a fraud stop first (so
    client retries and UNSCORED decisions are certain), then the other kinds in seeded
    order, then seeded extras; a PostgreSQL restart third when asked for."""
    if faults < 2:
        raise ValueError("a counted run needs at least 2 faults (wallet kill, fraud stop)")
    rng = random.Random(seed)
    rest = [k for k in BASE_KINDS if k not in (KILL_WALLET, FRAUD_RESTART)]
    rng.shuffle(rest)
    kinds = [KILL_WALLET, FRAUD_RESTART, *rest]
    if pg_restart:
        kinds.insert(2, PG_RESTART)
    while len(kinds) < faults:
        kinds.append(rng.choice(BASE_KINDS))
    return kinds[:faults]


@dataclass
class FaultInjector:
    seed: int
    wallets: list[ServiceProcess]
    wallet_addrs: list[str]
    fraud: ServiceProcess
    fraud_addr: str
    proxy: FaultProxy
    pg_restart: bool
    interval: tuple[float, float] = (1.5, 4.0)
    events: list[FaultEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = field(default_factory=time.monotonic)

    def start(self, duration: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(duration,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=180)
        self.heal()

    def counts(self) -> dict[str, int]:
        return dict(Counter(e.kind for e in self.events))

    def heal(self) -> None:
        """Undo every fault: resume and restart what is down, open the proxy."""
        self.proxy.restore()
        if self.fraud.stopped:
            self.fraud.resume()
        if not self.fraud.alive:
            self.fraud.start()
        for wallet in self.wallets:
            if not wallet.alive:
                wallet.start()
        if self.pg_restart:
            ensure_postgres_running()
        wait_serving(self.fraud_addr, 30)
        for addr in self.wallet_addrs:
            wait_serving(addr, 60)

    # -- count-driven ------------------------------------------------------------------

    def run_counted(self, kinds: list[str], hold: Hold, settle: Callable[[], bool]) -> None:
        """Inject `kinds` in order, each held until `hold` says the workload observed it;
        before each, `settle` waits for the workload to make progress on a healthy system."""
        rng = random.Random(self.seed ^ 0x5EED)
        for kind in kinds:
            if not settle():
                self.errors.append(f"before {kind}: the workload made no progress (hang guard)")
            self._inject(kind, rng, hold)

    # -- duration-driven ---------------------------------------------------------------

    def _schedule(self, duration: float) -> list[str]:
        """Every base kind once first (seeded order), then seeded random extras."""
        rng = random.Random(self.seed)
        mean = sum(self.interval) / 2 + 2.0
        kinds = list(BASE_KINDS)
        rng.shuffle(kinds)
        while len(kinds) < max(len(BASE_KINDS), int(duration / mean)):
            kinds.append(rng.choice(BASE_KINDS))
        if self.pg_restart:
            kinds.insert(2, PG_RESTART)
        return kinds

    def _run(self, duration: float) -> None:
        rng = random.Random(self.seed ^ 0x5EED)
        self._started = time.monotonic()

        def hold_for_span(kind: str) -> bool:
            self._stop.wait(rng.uniform(*SPANS[kind]))  # stop() ends the span early
            return True

        for kind in self._schedule(duration):
            if self._stop.wait(rng.uniform(*self.interval)):
                return
            if time.monotonic() - self._started > duration - 2:
                return
            self._inject(kind, rng, hold_for_span)

    # -- one fault ---------------------------------------------------------------------

    def _inject(self, kind: str, rng: random.Random, hold: Hold) -> None:
        begin: dict[str, Callable[[random.Random], ActiveFault]] = {
            KILL_WALLET: self._kill_wallet,
            FRAUD_RESTART: self._fraud_restart,
            FRAUD_FREEZE: self._fraud_freeze,
            FRAUD_DELAY: self._fraud_delay,
            FRAUD_DROP: self._fraud_drop,
            PG_RESTART: self._pg_restart,
        }
        at = time.monotonic() - self._started
        t0 = time.monotonic()
        try:
            fault = begin[kind](rng)
            # A PostgreSQL restart is over once the command returns: nothing to hold.
            observed = True if kind == PG_RESTART else hold(kind)
            note = fault.end()
        except Exception as exc:  # keep injecting; report the failure
            log.exception("fault %s failed", kind)
            self.errors.append(f"{kind}: {exc!r}")
            with contextlib.suppress(Exception):
                self.heal()
            return
        if not observed:
            self.errors.append(f"{kind}: the workload never observed it (hang guard)")
        took = round(time.monotonic() - t0, 2)
        detail = f"{fault.detail}; {note}" if note else fault.detail
        self.events.append(FaultEvent(kind, round(at, 2), fault.target, took, detail, observed))
        log.info("fault %s on %s (%s)", kind, fault.target, detail)

    # -- the faults ---------------------------------------------------------------------

    def _kill_wallet(self, rng: random.Random) -> ActiveFault:
        index = rng.randrange(len(self.wallets))
        wallet = self.wallets[index]
        wallet.kill9()

        def end() -> str:
            wallet.start()
            return f"serving again: {wait_serving(self.wallet_addrs[index], 60)}"

        return ActiveFault(wallet.name, "kill -9", end)

    def _fraud_restart(self, rng: random.Random) -> ActiveFault:
        code = self.fraud.terminate(timeout=10)

        def end() -> str:
            self.fraud.start()
            return f"serving again: {wait_serving(self.fraud_addr, 30)}"

        return ActiveFault("fraud", f"SIGTERM, exit {code}", end)

    def _fraud_freeze(self, rng: random.Random) -> ActiveFault:
        self.fraud.pause()

        def end() -> str:
            self.fraud.resume()
            return ""

        return ActiveFault("fraud", "SIGSTOP", end)

    def _fraud_delay(self, rng: random.Random) -> ActiveFault:
        delay = rng.uniform(0.3, 0.8)  # the wallet's deadline is 200 ms
        self.proxy.delay(delay)
        return ActiveFault("fraud-proxy", f"+{int(delay * 1000)} ms per chunk", self._restore)

    def _fraud_drop(self, rng: random.Random) -> ActiveFault:
        self.proxy.drop()
        return ActiveFault("fraud-proxy", "connections reset, refused", self._restore)

    def _restore(self) -> str:
        self.proxy.restore()
        return ""

    def _pg_restart(self, rng: random.Random) -> ActiveFault:
        t0 = time.monotonic()
        restart_postgres()
        took = time.monotonic() - t0
        return ActiveFault("postgresql", f"pg_ctlcluster restart took {took:.1f}s", lambda: "")
