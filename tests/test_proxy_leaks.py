"""No leaks: every toxic, every direction, clients closing first and servers closing first.

The proxy runs as a real child process (`aftershock proxy`), so its descriptors can be
counted in /proc/<pid>/fd. Each case opens connections concurrently through one proxy
with one toxic, lets one side close, and then requires that the other side was told
(end of stream or reset) and that the proxy's descriptor count and `connections_active`
return to what they were before the case.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from test_proxy_bounds import StandaloneProxy
from test_proxy_support import TcpServer, wait_for

from faults.proxy.toxics import TOXIC_TYPES

CONNECTIONS = 20  # per case, opened concurrently
TOLD_WITHIN = 5.0  # s for the far side to see an end of stream or a reset
SETTLE_WITHIN = 10.0  # s for the proxy to get back to its starting figures
REQUEST = b"GET / HTTP/1.1\r\nHost: leak\r\nContent-Length: 0\r\n\r\n"  # HTTP, for the HTTP toxics

# one short setting per toxic; every toxic type must appear here
TOXICS: dict[str, dict[str, object]] = {
    "latency": {"latency": 30, "jitter": 10},
    "bandwidth": {"rate": 50},
    "slow_close": {"delay": 100},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 20},
    "slicer": {"average_size": 8, "size_variation": 4, "delay": 1000},
    "limit_data": {"bytes": 10},
    "noop": {},
    "http_error": {"status": 503},
    "http_delay": {"delay": 30},
    "http_stream_slow": {"delay": 30},
    "http_stream_stall": {"stall": 100},
    "http_stream_cut": {},
    "http_stream_corrupt": {},
}
CASES = [
    pytest.param(kind, attrs, stream, closer, id=f"{label}-{stream}-{closer}")
    for label, kind, attrs in [
        *((kind, kind, attrs) for kind, attrs in TOXICS.items()),
        ("timeout150", "timeout", {"timeout": 150}),  # closes on its own while clients wait
    ]
    for stream in TOXIC_TYPES[kind].directions
    for closer in ("client", "server")
]


def test_every_toxic_type_is_covered() -> None:
    assert set(TOXICS) == set(TOXIC_TYPES)


class ProxyProcess(StandaloneProxy):
    """`aftershock proxy` as a child process, with its descriptor count."""

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        # a fresh connection per call, closed after it: no API socket stays open in the proxy
        response = self.call(method, path, headers={"Connection": "close"}, **kwargs)
        assert response.status_code < 300, response.text
        return response

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


@pytest.fixture(scope="module")
def proxy_process() -> Iterator[ProxyProcess]:
    process = ProxyProcess("--seed", "1")
    try:
        yield process
    finally:
        process.stop()


def _stable_fds(process: ProxyProcess) -> int:
    """The descriptor count once it stops moving (an API call's socket may still be closing)."""
    last = process.fds()
    deadline = time.monotonic() + SETTLE_WITHIN
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = process.fds()
        if now == last:
            return now
        last = now
    return last


class Upstream:
    """Echo server for `client` closers (it closes once it sees the client's end); for
    `server` closers it answers once and closes first. Records how each read ended."""

    def __init__(self, closer: str) -> None:
        self.closer = closer
        self.told = threading.Semaphore(0)  # released when a handler saw EOF/reset
        self.server = TcpServer(self._handle)

    def _handle(self, conn: socket.socket) -> None:
        if self.closer == "server":
            conn.settimeout(0.2)
            try:
                conn.recv(65536)  # the request, unless a toxic holds it
            except TimeoutError:
                pass
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            return  # TcpServer closes the socket: the server closes first
        conn.settimeout(TOLD_WITHIN + 5)
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except ConnectionError:
            pass
        self.told.release()


def _client(listen: str, closer: str) -> bool:
    """One client; returns whether it was told the server closed (server closers only)."""
    host, port = listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        try:
            sock.sendall(REQUEST)
        except ConnectionError:
            return True  # reset_peer already cut it
        if closer == "client":
            sock.settimeout(0.1)
            try:
                sock.recv(65536)  # whatever comes back in time; then give up and close
            except (TimeoutError, ConnectionError):
                pass
            return True
        sock.settimeout(TOLD_WITHIN)
        try:
            while sock.recv(65536):
                pass
        except ConnectionError:
            return True  # a reset is being told, too
        except TimeoutError:
            return False
        return True


@pytest.mark.parametrize("kind, attrs, stream, closer", CASES)
def test_no_leak(proxy_process: ProxyProcess, kind: str, attrs: dict, stream: str, closer: str) -> None:
    upstream = Upstream(closer)
    name = f"leak_{kind}_{stream}_{closer}"
    try:
        listen = proxy_process.api(
            "POST", "/proxies", json={"name": name, "listen": "127.0.0.1:0", "upstream": upstream.server.address}
        ).json()["listen"]
        proxy_process.api(
            "POST", f"/proxies/{name}/toxics", json={"type": kind, "stream": stream, "attributes": attrs}
        )
        stats = lambda: proxy_process.api("GET", f"/proxies/{name}").json()["stats"]
        assert stats()["connections_active"] == 0
        before = _stable_fds(proxy_process)

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            told = list(pool.map(lambda _: _client(listen, closer), range(CONNECTIONS)))
        assert all(told), f"{told.count(False)} clients never saw the server close"
        if closer == "client":
            for _ in range(CONNECTIONS):
                assert upstream.told.acquire(timeout=TOLD_WITHIN), "a server never saw its client close"

        wait_for(lambda: stats()["connections_active"] == 0, timeout=SETTLE_WITHIN, what="connections_active 0")
        assert stats()["connections_total"] == CONNECTIONS
        wait_for(
            lambda: proxy_process.fds() == before,
            timeout=SETTLE_WITHIN,
            what=f"proxy fds back to {before} (now {proxy_process.fds()})",
        )
    finally:
        upstream.server.close()
        proxy_process.call("DELETE", f"/proxies/{name}")
