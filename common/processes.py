"""One way to start, probe and stop the real service processes (`python -m <package>`).

Used by `make run` (scripts/run_all.py), the bench, the chaos runner and the tests; the
services themselves never import it. Standard library plus grpc only, so no test
dependency comes along.

A `ServiceProcess` runs one child with its stdout and stderr in a log file (kept, so a
failing test or run can be read afterwards; `log_dir=None` inherits the terminal instead),
can wait until a readiness probe passes (gRPC health SERVING or an HTTP 200), and stops with
SIGTERM then SIGKILL after a grace; kill -9 and SIGSTOP/SIGCONT are there for fault tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.tls import TlsSettings
from common.tls import channel as tls_channel

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PACKAGES = ("wallet_service", "fraud_service", "gateway", "common", "gen")
STOP_GRACE_SECONDS = 15.0

Probe = Callable[[], bool]


class ServiceError(RuntimeError):
    """A service exited or did not become ready; the message ends with its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS may hand it out again later)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_address(host: str = "127.0.0.1") -> str:
    return f"{host}:{free_port(host)}"


def grpc_serving(
    address: str, service: str = "", timeout: float = 1.0, tls: TlsSettings | None = None
) -> bool:
    """One grpc.health.v1 Check: is `service` ("" = the whole server) SERVING? `tls`: the
    identity to dial a TLS server with (plaintext without)."""
    with tls_channel(address, tls or TlsSettings()) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """One GET: did `url` answer 200?"""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def wait_for(probe: Probe, timeout: float, interval: float = 0.1) -> bool:
    """Poll `probe` until it passes (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_serving(address: str, timeout: float = 30.0, service: str = "") -> bool:
    return wait_for(lambda: grpc_serving(address, service), timeout)


def python_path(code: Path = ROOT) -> str:
    """PYTHONPATH for a child that runs the code under `code` (and its generated stubs)."""
    return os.pathsep.join([str(code), str(code / "gen")])


def snapshot_code(dest: Path, packages: Iterable[str] = SERVICE_PACKAGES) -> Path:
    """Copy the service code as it is now, so every (re)start during a run executes the same
    code even while someone edits the tree (a restarted replica must not load a half-edit)."""
    for package in packages:
        shutil.copytree(
            ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return dest


class ServiceProcess:
    """One `python -m <module>` child; restartable with the same settings (same port).

    `env` is laid over `base_env` (default: this process's environment); PYTHONPATH points
    at `code`, which comes first, ahead of the venv's .pth entries for the repository. The
    child runs in `cwd` (default `code`); pass a scratch directory to keep a developer's
    .env and ./data out of it.
    """

    def __init__(
        self,
        name: str,
        module: str,
        env: Mapping[str, str],
        log_dir: Path | None = None,
        code: Path = ROOT,
        *,
        cwd: Path | None = None,
        base_env: Mapping[str, str] | None = None,
        address: str = "",
    ) -> None:
        self.name = name
        self.module = module
        self.code = code
        self.cwd = cwd or code
        base = os.environ if base_env is None else base_env
        self.env = {**base, **env, "PYTHONPATH": python_path(code)}
        self.log_path = log_dir / f"{name}.log" if log_dir is not None else None
        self.address = address  # where it serves (host:port or a base URL), for the caller
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False  # SIGSTOPped
        self.stop_requested = False  # SIGTERM sent to the current child
        self.starts = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.log_path is None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module], cwd=self.cwd, env=self.env
            )
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", self.module],
                    cwd=self.cwd,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        self.stopped = False
        self.stop_requested = False
        self.starts += 1

    def wait_ready(self, probe: Probe, timeout: float = 60.0) -> None:
        """Block until `probe` passes; ServiceError (with the log tail) if the child exits
        first or `timeout` passes (then the child is stopped)."""
        deadline = time.monotonic() + timeout
        while not probe():
            if not self.alive:
                raise ServiceError(f"{self.name} exited with {self.returncode}{self._tail()}")
            if time.monotonic() >= deadline:
                self.terminate(timeout=5)
                raise ServiceError(f"{self.name} not ready after {timeout:.0f} s{self._tail()}")
            time.sleep(0.1)

    def wait_grpc_serving(self, address: str, service: str = "", timeout: float = 60.0) -> None:
        self.wait_ready(lambda: grpc_serving(address, service), timeout)

    def wait_http_ok(self, url: str, timeout: float = 60.0) -> None:
        self.wait_ready(lambda: http_ok(url), timeout)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit on its own; its exit code."""
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.wait(timeout=timeout)

    def terminate(self, timeout: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM (the graceful drain), SIGKILL if it is still up after `timeout`; returns
        the exit code (None if never started)."""
        if self.proc is None:
            return None
        self.request_stop()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return self.proc.returncode

    def request_stop(self) -> None:
        """SIGTERM once, without waiting (so several children can drain at once). Once is
        enough: the gRPC services log and ignore a repeat (common/grpc_server.py), but a
        process that is not yet serving takes the default action of every one."""
        if self.stopped:
            self.resume()  # a frozen process cannot act on SIGTERM
        if not self.stop_requested:
            self.signal(signal.SIGTERM)
            self.stop_requested = True

    def kill9(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        self.stopped = False

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.stopped = False

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.alive:
            self.terminate()

    # -- state and log --------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def log_text(self) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _tail(self) -> str:
        tail = self.log_tail()
        return f"; log {self.log_path}:\n{tail}" if tail else ""
