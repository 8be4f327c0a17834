"""Connections through the proxy: many of them without leaks, changes reaching open
connections, `enabled`, unreachable upstreams, HTTP toxics, and the standalone server."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from test_proxy_support import (
    TcpServer,
    api,
    connect,
    echo,
    open_fds,
    recv_exactly,
    recv_until_eof,
    wait_for,
)
from toxiproxy import Toxiproxy

from faults.proxy.server import load_config
from harness.core.fault import UserError

pytest_plugins = ["test_proxy_support"]  # fixtures: embedded, toxi

ROOT = Path(__file__).resolve().parents[1]


def test_1000_connections_open_and_close_without_leaking_fds(embedded, toxi: Toxiproxy) -> None:
    with TcpServer(echo) as server:
        proxy = toxi.create(upstream=server.address, name="many")
        proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 0})

        def one(i: int) -> None:
            with connect(proxy.listen) as sock:
                if i % 2:
                    sock.sendall(b"ping")
                    assert recv_exactly(sock, 4) == b"ping"

        one(1)  # warm up (threads, sockets of the pool) before counting
        before = open_fds()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(1000)))
        stats = lambda: api(embedded, "GET", "/proxies/many").json()["stats"]
        wait_for(lambda: stats()["connections_active"] == 0, what="all proxied connections closed")
        assert stats()["connections_total"] == 1001
        wait_for(
            lambda: open_fds() <= before + 4, what=f"fds back near {before} (now {open_fds()})"
        )


def test_toxic_changes_reach_open_connections(toxi: Toxiproxy) -> None:
    with TcpServer(echo) as server:
        proxy = toxi.create(upstream=server.address, name="live")
        with connect(proxy.listen) as sock:

            def round_trip() -> float:
                start = time.perf_counter()
                sock.sendall(b"x")
                assert recv_exactly(sock, 1) == b"x"
                return time.perf_counter() - start

            assert round_trip() < 0.2
            proxy.add_toxic(type="latency", name="slow", attributes={"latency": 300})
            assert round_trip() >= 0.3 - 0.003
            from toxiproxy.api import APIConsumer

            APIConsumer.post("/proxies/live/toxics/slow", json={"attributes": {"latency": 100}})
            assert 0.1 - 0.003 <= round_trip() < 0.28
            proxy.destroy_toxic("slow")
            assert round_trip() < 0.2


def test_toxicity_zero_never_acts_and_one_always_does(toxi: Toxiproxy) -> None:
    with TcpServer(echo) as server:
        proxy = toxi.create(upstream=server.address, name="tox")
        proxy.add_toxic(type="limit_data", name="never", toxicity=0.0, attributes={"bytes": 0})
        for _ in range(5):
            with connect(proxy.listen) as sock:
                sock.sendall(b"ok")
                assert recv_exactly(sock, 2) == b"ok"
        proxy.destroy_toxic("never")
        proxy.add_toxic(type="limit_data", name="always", toxicity=1.0, attributes={"bytes": 0})
        with connect(proxy.listen) as sock:
            sock.sendall(b"ok")
            assert recv_exactly(sock, 2) == b""


def test_disabled_proxy_refuses_and_drops_connections(toxi: Toxiproxy) -> None:
    with TcpServer(echo) as server:
        proxy = toxi.create(upstream=server.address, name="down")
        proxy.add_toxic(type="noop")
        sock = connect(proxy.listen)
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        with proxy.down():
            try:
                assert sock.recv(1) == b""
            except ConnectionResetError:
                pass
            with pytest.raises(ConnectionRefusedError):
                connect(proxy.listen, timeout=2)
        sock.close()
        with connect(proxy.listen) as again:  # same address again, toxics kept
            again.sendall(b"b")
            assert recv_exactly(again, 1) == b"b"
        assert list(proxy.toxics()) == ["noop_downstream"]


def test_unreachable_upstream_accepts_then_closes(toxi: Toxiproxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    proxy = toxi.create(upstream=dead, name="nowhere")
    with connect(proxy.listen) as sock:
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass


def test_half_close_lets_the_reply_through(toxi: Toxiproxy) -> None:
    def reply_after_eof(conn: socket.socket) -> None:
        data = b""
        while chunk := conn.recv(1024):
            data += chunk
        conn.sendall(data.upper())

    with TcpServer(reply_after_eof) as server:
        proxy = toxi.create(upstream=server.address, name="half")
        with connect(proxy.listen) as sock:
            sock.sendall(b"question")
            sock.shutdown(socket.SHUT_WR)
            assert recv_exactly(sock, 8) == b"QUESTION"


class _Counting(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        self._answer()

    def do_POST(self) -> None:
        type(self).seen += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer()

    def _answer(self) -> None:
        body = b"fine"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_upstream():
    _Counting.seen = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_error_answers_a_share_of_requests(
    embedded, toxi: Toxiproxy, http_upstream: str
) -> None:
    proxy = toxi.create(upstream=http_upstream, name="web")
    proxy.add_toxic(type="http_error", stream="upstream", attributes={"status": 503, "rate": 1.0})
    with requests.Session() as session:  # keep-alive: one connection, many requests
        for _ in range(3):
            r = session.get(f"http://{proxy.listen}/x", timeout=5)
            assert r.status_code == 503 and r.headers["X-Aftershock-Fault"] == "http_error"
        assert _Counting.seen == 0  # the upstream never saw them
        from toxiproxy.api import APIConsumer

        APIConsumer.post(
            "/proxies/web/toxics/http_error_upstream", json={"attributes": {"rate": 0.5}}
        )
        codes = [
            session.post(f"http://{proxy.listen}/y", data=b"z" * 3000, timeout=5).status_code
            for _ in range(40)
        ]
    assert set(codes) == {200, 503}
    assert _Counting.seen == codes.count(200)
    r = api(embedded, "POST", "/proxies/web/toxics", json={"type": "http_error", "name": "d"})
    assert r.status_code == 400 and "use stream upstream" in r.json()["error"]


def test_http_delay_delays_response_headers(toxi: Toxiproxy, http_upstream: str) -> None:
    proxy = toxi.create(upstream=http_upstream, name="webd")
    proxy.add_toxic(type="http_delay", stream="upstream", attributes={"delay": 300})
    with requests.Session() as session:
        for _ in range(2):
            start = time.perf_counter()
            r = session.get(f"http://{proxy.listen}/", timeout=5)
            assert r.status_code == 200 and r.text == "fine"
            assert 0.3 - 0.003 <= time.perf_counter() - start <= 0.3 + 0.3


def test_standalone_server_with_config_and_sigterm(tmp_path: Path) -> None:
    with TcpServer(echo) as upstream, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        api_port = s.getsockname()[1]
        s.close()
        config = tmp_path / "proxies.json"
        config.write_text(
            json.dumps(
                [
                    {
                        "name": "echo",
                        "listen": "127.0.0.1:0",
                        "upstream": upstream.address,
                        "toxics": [{"type": "latency", "attributes": {"latency": 1}}],
                    }
                ]
            )
        )
        code = (
            "from faults.proxy.server import serve; "
            f"serve('127.0.0.1', {api_port}, {str(config)!r}, 7)"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        try:
            url = f"http://127.0.0.1:{api_port}"

            def up() -> bool:
                try:
                    return requests.get(url + "/proxies", timeout=1).status_code == 200
                except requests.ConnectionError:
                    return False

            wait_for(up, timeout=20, what="the standalone API")
            listen = requests.get(url + "/proxies/echo", timeout=5).json()["listen"]
            with connect(listen) as sock:
                sock.sendall(b"hi")
                assert recv_exactly(sock, 2) == b"hi"
            child.send_signal(signal.SIGTERM)
            assert child.wait(timeout=15) == 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stderr.close()


def test_bad_config_files_are_user_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(UserError, match=f"{missing}: cannot read"):
        load_config(str(missing))
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "a",}]')
    with pytest.raises(UserError, match=rf"{bad}:1:\d+: invalid JSON"):
        load_config(str(bad))
    bad.write_text('{"name": "a"}')
    with pytest.raises(UserError, match="expected a JSON list of proxies"):
        load_config(str(bad))
    bad.write_text('[{"name": "a", "listen": "127.0.0.1:0"}]')
    with pytest.raises(UserError, match="missing required field: upstream at proxy 1"):
        load_config(str(bad))
    bad.write_text('[{"name": "a", "upstream": "no-port"}]')
    with pytest.raises(UserError, match="missing port in address"):
        load_config(str(bad))
    code = f"from faults.proxy.server import serve; serve('127.0.0.1', 0, {str(bad)!r}, None)"
    r = subprocess.run(  # noqa: PLW1510 - the exit code is asserted below
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert r.returncode != 0 and "UserError" in r.stderr and "missing port" in r.stderr


def test_a_server_that_speaks_first_is_heard(embedded, toxi: Toxiproxy) -> None:
    """A greeting sent (and the connection closed) the moment the upstream accepts must
    reach the client whole, with the close: nothing read before the links exist is lost."""
    greeting = b"220 ready\r\n" * 100

    def greet(conn: socket.socket) -> None:
        conn.sendall(greeting)

    with TcpServer(greet) as server:
        proxy = toxi.create(upstream=server.address, name="greeter")

        def one(_: int) -> bytes:
            with connect(proxy.listen, timeout=5) as sock:
                return recv_until_eof(sock)

        with ThreadPoolExecutor(10) as pool:
            heard = list(pool.map(one, range(50)))
        assert heard.count(greeting) == 50, [len(h) for h in heard if h != greeting]
        stats = lambda: api(embedded, "GET", "/proxies/greeter").json()["stats"]
        wait_for(lambda: stats()["connections_active"] == 0, what="all proxied connections closed")
