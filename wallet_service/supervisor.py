"""WALLET_PROCESSES > 1: that many wallet processes serve one port, under this supervisor.

Why processes: one CPython process spends its transfers' CPU under one GIL (see
bench/README.md, the CPU budget); the wallet keeps no state of its own between calls (the
database holds it, the sender turns are PostgreSQL advisory locks too), so N processes
on one port (SO_REUSEPORT: the kernel spreads connections over them) use N cores.

The supervisor starts the first child and waits until it serves (it migrates the database
and bootstraps the admin alone), then the others. SIGTERM or SIGINT: it forwards SIGTERM to
every child, each drains its calls (WALLET_GRACE_SECONDS) and exits; the supervisor exits
0 when all did. A child that dies on its own stops the others and the supervisor exits 1,
so whatever runs the supervisor (make run, systemd, compose) sees the failure.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from common.config import ConfigError
from common.logs import log_fields
from wallet_service.settings import WalletSettings

log = logging.getLogger(__name__)

CHILD_ENV = "WALLET_PROCESS_INDEX"  # set in each child: serve, do not supervise
READY_FD_ENV = "WALLET_READY_FD"  # the child writes one byte there once it serves
READY_TIMEOUT_SECONDS = 120.0
STOP_SLACK_SECONDS = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def is_child(env: Mapping[str, str]) -> bool:
    return CHILD_ENV in env


def supervise(settings: WalletSettings, env: Mapping[str, str]) -> int:
    """Run `settings.processes` wallet processes until SIGTERM/SIGINT; the exit status."""
    if settings.address.rsplit(":", 1)[-1] == "0":
        raise ConfigError("WALLET_PROCESSES > 1 needs a fixed port in WALLET_ADDR, not 0")
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log_fields(log, "stopping all wallet processes", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # The first alone (it migrates and bootstraps the admin), then the others together.
    children = [_spawn(0, env)]
    failed = not _wait_ready(children, stop)
    if not failed:
        rest = [_spawn(i, env) for i in range(1, settings.processes)]
        children += rest
        failed = not _wait_ready(rest, stop)
    if not failed:
        log_fields(
            log,
            "wallet processes started",
            processes=settings.processes,
            pids=[c.process.pid for c in children],
            address=settings.address,
        )
        failed = _watch(children, stop)
    codes = _stop_all(children, settings.grace_seconds + STOP_SLACK_SECONDS)
    log_fields(log, "wallet processes stopped", exit_codes=codes)
    return 1 if failed or any(code != 0 for code in codes) else 0


class _Child:
    """A wallet process and the read end of its readiness pipe."""

    def __init__(self, index: int, env: Mapping[str, str]) -> None:
        self.ready_fd, write_fd = os.pipe()
        child_env = {**_child_metrics_port(index, env), CHILD_ENV: str(index)}
        child_env[READY_FD_ENV] = str(write_fd)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wallet_service"],
            env=child_env,
            pass_fds=(write_fd,),
            preexec_fn=_die_with_parent,
        )
        os.close(write_fd)  # the child holds it now: EOF here means the child is gone
        self.ready = False


def _child_metrics_port(index: int, env: Mapping[str, str]) -> dict[str, str]:
    """Each process serves its own scrape endpoint: with a fixed metrics port N, process i
    listens on N + i (one port cannot be bound twice); 0 (any free port) and unset stay."""
    child = dict(env)
    base = env.get("WALLET_METRICS_PORT") or env.get("METRICS_PORT") or ""
    if base.isdigit() and int(base) > 0:
        child["WALLET_METRICS_PORT"] = str(int(base) + index)
    return child


def _spawn(index: int, env: Mapping[str, str]) -> _Child:
    return _Child(index, env)


def notify_ready() -> None:
    """In a supervised child, once it serves: tell the supervisor (one byte on its pipe)."""
    fd = os.environ.get(READY_FD_ENV, "")
    if fd.isdigit():
        os.write(int(fd), b"R")
        os.close(int(fd))


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL when the supervisor dies (even by kill -9), so no
    orphan keeps serving the shared port."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_ready(children: list[_Child], stop: threading.Event) -> bool:
    """Until every child of `children` has said it serves; False if one died first, or we
    were told to stop, or the start took longer than READY_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    waiting = {c.ready_fd: c for c in children}
    while waiting and not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        readable, _, _ = select.select(list(waiting), [], [], min(left, 0.5))
        for fd in readable:
            child = waiting.pop(fd)
            os.close(fd)
            if child.process.poll() is not None and child.process.returncode != 0:
                return False
            child.ready = True  # one byte, or EOF of a child that died (watched next)
    return not waiting


def _watch(children: list[_Child], stop: threading.Event) -> bool:
    """Until told to stop (False) or a child exits on its own (True: a failure)."""
    while not stop.wait(0.5):
        for child in children:
            if child.process.poll() is not None:
                log_fields(
                    log,
                    "a wallet process exited",
                    pid=child.process.pid,
                    exit_code=child.process.returncode,
                )
                return True
    return False


def _stop_all(children: list[_Child], timeout: float) -> list[int]:
    """SIGTERM to each, then their exit codes. A child stopped before it served (its
    handler not yet installed) dies of the signal: nothing was in flight, so that is a
    clean stop too and counts as 0."""
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    codes = []
    for child in children:
        try:
            code = child.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.process.kill()
            code = child.process.wait()
        codes.append(0 if code == -signal.SIGTERM and not child.ready else code)
    return codes
