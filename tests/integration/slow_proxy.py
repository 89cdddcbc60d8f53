"""A TCP proxy for tests that holds back every answer from upstream by a delay that can change at any time.

It stands between the host and Azurite to make storage slow: requests reach storage at once, answers come
late (or, with a delay longer than the client waits, never in time).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from devenv.azurite import free_port


class SlowProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.delay_s = 0.0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, delayed: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if delayed:
                    self._wait(sink)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _wait(self, sink: socket.socket) -> None:
        """Sleep the delay in small steps, so a proxy being closed or a changed delay is seen soon."""
        until = time.monotonic() + self.delay_s
        while time.monotonic() < until and not self._closing.is_set():
            time.sleep(0.05)
            until = min(until, time.monotonic() + self.delay_s)
