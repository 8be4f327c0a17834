"""Shared pieces for the proxy tests: a running embedded proxy, the unmodified
toxiproxy-python client pointed at it, and small real TCP upstreams.

(Named test_proxy_* so it sits with the proxy tests; it holds fixtures, no tests.)
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Self

import pytest
import requests
from toxiproxy import Toxiproxy

from faults.proxy import EmbeddedProxy


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedProxy]:
    proxy = EmbeddedProxy(host="127.0.0.1", port=0, seed=1234)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def toxi(embedded: EmbeddedProxy) -> Iterator[Toxiproxy]:
    """toxiproxy-python, unmodified, aimed at the embedded server (class-level globals)."""
    server = Toxiproxy()
    host, port = embedded.api_url.removeprefix("http://").rsplit(":", 1)
    server.update_api_consumer(host, int(port))
    server.destroy_all()
    try:
        yield server
    finally:
        server.destroy_all()


def api(embedded: EmbeddedProxy, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, embedded.api_url + path, timeout=10, **kwargs)


def address(listen: str) -> tuple[str, int]:
    host, port = listen.rsplit(":", 1)
    return host, int(port)


def connect(listen: str, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(address(listen), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def recv_until_eof(sock: socket.socket, limit: int = 1 << 24) -> bytes:
    out = bytearray()
    while len(out) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return bytes(out)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class TcpServer:
    """A real loopback TCP server running `handler(conn)` in a thread per connection."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.connections: queue.Queue[socket.socket] = queue.Queue()
        self._closed = False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.add(conn)
            self.connections.put(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        with self._lock:
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def echo(conn: socket.socket) -> None:
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def hold(conn: socket.socket) -> None:
    """Accept and do nothing until the peer goes away (the test drives the socket)."""
    while conn.recv(65536):
        pass


class LineEcho:
    """Echo server that reports when it has read each full line (upstream timing)."""

    def __init__(self) -> None:
        self.arrivals: queue.Queue[tuple[float, bytes]] = queue.Queue()
        self.server = TcpServer(self._handle)

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.arrivals.put((time.perf_counter(), line + b"\n"))
                conn.sendall(line + b"\n")

    def close(self) -> None:
        self.server.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
