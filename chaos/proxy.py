"""A tiny TCP proxy between the wallet and fraud_service that can be told to delay or drop.

The wallet dials the proxy; the proxy dials fraud_service per connection. `delay(s)` holds
every chunk for `s` seconds before forwarding it (so a Score reply arrives after the
wallet's deadline); `drop()` resets every open connection and refuses new ones until
`restore()`. No test hook lives in fraud_service itself.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class FaultProxy:
    def __init__(self, listen_port: int, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", listen_port))
        self._server.listen(128)
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._delay = 0.0
        self._dropping = False
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="proxy", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def drop(self) -> None:
        with self._lock:
            self._dropping = True
            conns = list(self._conns)
        for conn in conns:
            _hard_close(conn)

    def restore(self) -> None:
        self._delay = 0.0
        self._dropping = False

    def close(self) -> None:
        self._closed = True
        self.drop()
        with contextlib.suppress(OSError):
            self._server.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._dropping:
                _hard_close(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=2)
                upstream.settimeout(None)
            except OSError:
                _hard_close(client)
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                delay = self._delay
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _hard_close(sock)
                with self._lock:
                    self._conns.discard(sock)


def _hard_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
