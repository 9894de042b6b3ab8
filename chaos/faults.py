"""The seeded fault injector: kills and restarts wallet replicas, stops and restarts
fraud_service, freezes it (SIGSTOP), delays or drops its traffic at the proxy, and on
PostgreSQL restarts the database server once."""

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
        started = time.monotonic()
        schedule = self._schedule(duration)
        actions: dict[str, Callable[[random.Random], tuple[str, float, str]]] = {
            KILL_WALLET: self._kill_wallet,
            FRAUD_RESTART: self._fraud_restart,
            FRAUD_FREEZE: self._fraud_freeze,
            FRAUD_DELAY: self._fraud_delay,
            FRAUD_DROP: self._fraud_drop,
            PG_RESTART: self._pg_restart,
        }
        for kind in schedule:
            if self._stop.wait(rng.uniform(*self.interval)):
                return
            if time.monotonic() - started > duration - 2:
                return
            at = time.monotonic() - started
            t0 = time.monotonic()
            try:
                target, _, detail = actions[kind](rng)
            except Exception as exc:  # keep injecting; report the failure
                log.exception("fault %s failed", kind)
                self.errors.append(f"{kind}: {exc!r}")
                with contextlib.suppress(Exception):
                    self.heal()
                continue
            self.events.append(
                FaultEvent(kind, round(at, 2), target, round(time.monotonic() - t0, 2), detail)
            )
            log.info("fault %s on %s (%s)", kind, target, detail)

    # -- the faults ---------------------------------------------------------------------

    def _kill_wallet(self, rng: random.Random) -> tuple[str, float, str]:
        index = rng.randrange(len(self.wallets))
        wallet = self.wallets[index]
        wallet.kill9()
        down = rng.uniform(0.3, 2.0)
        time.sleep(down)
        wallet.start()
        serving = wait_serving(self.wallet_addrs[index], 60)
        return wallet.name, down, f"down {down:.1f}s, serving again: {serving}"

    def _fraud_restart(self, rng: random.Random) -> tuple[str, float, str]:
        code = self.fraud.terminate(timeout=10)
        down = rng.uniform(0.5, 3.0)
        time.sleep(down)
        self.fraud.start()
        serving = wait_serving(self.fraud_addr, 30)
        return "fraud", down, f"exit {code}, down {down:.1f}s, serving again: {serving}"

    def _fraud_freeze(self, rng: random.Random) -> tuple[str, float, str]:
        frozen = rng.uniform(0.5, 2.5)
        self.fraud.pause()
        time.sleep(frozen)
        self.fraud.resume()
        return "fraud", frozen, f"SIGSTOP for {frozen:.1f}s"

    def _fraud_delay(self, rng: random.Random) -> tuple[str, float, str]:
        delay = rng.uniform(0.3, 0.8)  # the wallet's deadline is 200 ms
        span = rng.uniform(1.0, 3.0)
        self.proxy.delay(delay)
        time.sleep(span)
        self.proxy.restore()
        return "fraud-proxy", span, f"+{int(delay * 1000)} ms per chunk for {span:.1f}s"

    def _fraud_drop(self, rng: random.Random) -> tuple[str, float, str]:
        span = rng.uniform(0.5, 2.0)
        self.proxy.drop()
        time.sleep(span)
        self.proxy.restore()
        return "fraud-proxy", span, f"connections reset, refused for {span:.1f}s"

    def _pg_restart(self, rng: random.Random) -> tuple[str, float, str]:
        t0 = time.monotonic()
        restart_postgres()
        took = time.monotonic() - t0
        return "postgresql", took, f"pg_ctlcluster restart took {took:.1f}s"
