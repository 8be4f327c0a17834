"""Each toxic over real sockets, covering the behaviours Toxiproxy's own tests check.

Tolerances are widened for a busy 2-core machine: lower bounds are strict (a delay
is never shorter than asked), upper bounds generous.
"""

from __future__ import annotations

import errno
import random
import socket
import threading
import time

import pytest
from test_proxy_support import (
    LineEcho,
    TcpServer,
    api,
    connect,
    echo,
    hold,
    recv_exactly,
    recv_until_eof,
    wait_for,
)
from toxiproxy import Toxiproxy

from faults.proxy.toxics import Kind, Piece
from faults.proxy.toxics.slicer import SlicerToxic, slice_sizes

pytest_plugins = ["test_proxy_support"]  # fixtures: embedded, toxi

SLACK = 0.15  # generous upper slack (s) for a loaded machine
EARLY = 0.003  # timer granularity allowed below a lower bound (s)


@pytest.fixture
def line_echo():
    server = LineEcho()
    yield server
    server.close()


def _round(sock: socket.socket, server: LineEcho) -> tuple[float, float]:
    """Send a >32 KiB line; return (time until the server read it, time until it came back)."""
    msg = b"hello world " + b"a" * (32 * 1024) + b"\n"
    start = time.perf_counter()
    sock.sendall(msg)
    arrived, got = server.arrivals.get(timeout=10)
    assert got == msg
    back = recv_exactly(sock, len(msg))
    end = time.perf_counter()
    assert back == msg
    return arrived - start, end - arrived


@pytest.mark.parametrize(
    "up, down", [(100, 0), (0, 100), (100, 100), (1000, 100), (100, 1000), (0, 0)]
)
def test_latency_per_direction(toxi: Toxiproxy, line_echo: LineEcho, up: int, down: int) -> None:
    proxy = toxi.create(upstream=line_echo.server.address, name="lat")
    proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": up})
    proxy.add_toxic(type="latency", stream="downstream", attributes={"latency": down})
    with connect(proxy.listen) as sock:
        there, back = _round(sock, line_echo)
    assert up / 1000 - EARLY <= there <= up / 1000 + SLACK
    assert down / 1000 - EARLY <= back <= down / 1000 + SLACK


def test_latency_jitter_stays_in_range(toxi: Toxiproxy, line_echo: LineEcho) -> None:
    proxy = toxi.create(upstream=line_echo.server.address, name="jit")
    proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 100, "jitter": 50})
    seen = []
    with connect(proxy.listen) as sock:
        for _ in range(5):
            there, _ = _round(sock, line_echo)
            seen.append(there)
            assert 0.05 - EARLY <= there <= 0.15 + SLACK


def test_stacked_latency_toxics_add(toxi: Toxiproxy, line_echo: LineEcho) -> None:
    proxy = toxi.create(upstream=line_echo.server.address, name="stack")
    proxy.add_toxic(type="latency", name="l0", stream="upstream", attributes={"latency": 500})
    proxy.add_toxic(type="latency", name="l1", stream="upstream", attributes={"latency": 500})
    with connect(proxy.listen) as sock:
        there, _ = _round(sock, line_echo)
    assert 1.0 - EARLY <= there <= 1.0 + SLACK


def test_latency_does_not_cap_throughput(toxi: Toxiproxy) -> None:
    payload = b"hello world " * 1000

    def firehose(conn: socket.socket) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            conn.sendall(payload)

    with TcpServer(firehose) as server:
        proxy = toxi.create(upstream=server.address, name="fast")
        proxy.add_toxic(type="latency", attributes={"latency": 100})
        with connect(proxy.listen) as sock:
            recv_exactly(sock, len(payload))
            time.sleep(0.15)  # let the pipeline fill
            start = time.perf_counter()
            total = len(recv_exactly(sock, len(payload) * 100))
            elapsed = time.perf_counter() - start
    assert total == len(payload) * 100
    # one 32 KiB chunk per 100 ms would be 0.3 MB/s; a pipelined delay runs far faster
    assert total / elapsed > 5e6, f"{total / elapsed / 1e6:.1f} MB/s"


def test_bandwidth_paces_and_keeps_bytes(toxi: Toxiproxy) -> None:
    data = random.Random(1).randbytes(480_000)
    received = bytearray()
    done = threading.Event()

    def sink(conn: socket.socket) -> None:
        while len(received) < len(data):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received.extend(chunk)
        done.set()

    with TcpServer(sink) as server:
        proxy = toxi.create(upstream=server.address, name="bw")
        proxy.add_toxic(type="bandwidth", stream="upstream", attributes={"rate": 1000})
        with connect(proxy.listen) as sock:
            start = time.perf_counter()
            sock.sendall(data)
            assert done.wait(10)
            elapsed = time.perf_counter() - start
    assert bytes(received) == data
    assert 0.48 - 0.01 <= elapsed <= 0.48 + 2 * SLACK


def _reset_helper(toxi: Toxiproxy, stream: str, timeout_ms: int) -> float:
    msg = b"reset toxic payload\n"

    def reply_once(conn: socket.socket) -> None:
        buf = b""
        while b"\n" not in buf:
            chunk = conn.recv(1024)
            if not chunk:
                return
            buf += chunk
        conn.sendall(msg)
        hold(conn)

    with TcpServer(reply_once) as server:
        proxy = toxi.create(upstream=server.address, name="rst")
        proxy.add_toxic(
            type="reset_peer", name="resettcp", stream=stream, attributes={"timeout": timeout_ms}
        )
        with connect(proxy.listen) as sock:
            start = time.perf_counter()
            sock.sendall(msg)
            with pytest.raises(ConnectionResetError) as caught:
                while sock.recv(1000):
                    pass
            elapsed = time.perf_counter() - start
            assert caught.value.errno == errno.ECONNRESET
            assert sock.recv(10) == b""  # then EOF, as Toxiproxy's test expects
    return elapsed


@pytest.mark.parametrize("stream", ["upstream", "downstream"])
@pytest.mark.parametrize("timeout_ms", [0, 100])
def test_reset_peer_sends_rst(toxi: Toxiproxy, stream: str, timeout_ms: int) -> None:
    elapsed = _reset_helper(toxi, stream, timeout_ms)
    assert timeout_ms / 1000 - EARLY <= elapsed <= timeout_ms / 1000 + 0.1 + SLACK


def test_timeout_zero_holds_data_and_removal_closes_both_ends(toxi: Toxiproxy) -> None:
    with TcpServer(lambda conn: time.sleep(30)) as server:  # the test drives the server's socket
        proxy = toxi.create(upstream=server.address, name="to")
        with connect(proxy.listen) as client:
            server_side = server.connections.get(timeout=5)
            client.sendall(b"foobar")
            assert recv_exactly(server_side, 6) == b"foobar"
            proxy.add_toxic(
                type="timeout", name="to_delete", stream="upstream", attributes={"timeout": 0}
            )
            client.sendall(b"lost")
            server_side.settimeout(0.3)
            with pytest.raises(socket.timeout):
                server_side.recv(10)
            start = time.perf_counter()
            proxy.destroy_toxic("to_delete")
            client.settimeout(2)
            server_side.settimeout(2)
            assert client.recv(1) == b""
            assert server_side.recv(1) == b""
            assert time.perf_counter() - start < 1.0 + SLACK


def test_timeout_closes_after_its_timeout(toxi: Toxiproxy) -> None:
    with TcpServer(echo) as server:
        proxy = toxi.create(upstream=server.address, name="to2")
        proxy.add_toxic(type="timeout", attributes={"timeout": 200})
        with connect(proxy.listen) as sock:
            start = time.perf_counter()
            sock.sendall(b"x")
            assert recv_until_eof(sock) == b""
            assert 0.2 - EARLY <= time.perf_counter() - start <= 0.2 + SLACK


def test_slicer_piece_counts() -> None:
    """Toxiproxy checks the slicer on its pieces; so do we, on the real toxic."""
    toxic = SlicerToxic(SlicerToxic.parse_attributes({"average_size": 1024, "size_variation": 512}))
    link = type("L", (), {"rng": random.Random(3), "direction": "downstream"})()
    data = random.Random(2).randbytes(480_000)
    pieces = list(toxic.pipe(Piece(data, 0.0), toxic.new_state(), link))
    assert 240 <= len(pieces) <= 720
    assert b"".join(p.data for p in pieces) == data and all(p.kind is Kind.DATA for p in pieces)
    assert slice_sizes(24, 1, 0, random.Random(0)) == [1] * 24


def test_slicer_over_sockets(toxi: Toxiproxy) -> None:
    with TcpServer(echo) as server:
        proxy = toxi.create(upstream=server.address, name="slice")
        proxy.add_toxic(
            type="slicer", attributes={"average_size": 1, "size_variation": 0, "delay": 20_000}
        )
        with connect(proxy.listen) as sock:
            msg = b"abcdefghijklmnopqrstuvwx"  # 24 bytes
            start = time.perf_counter()
            sock.sendall(msg)
            reads, got = 0, b""
            while len(got) < len(msg):
                got += sock.recv(100)
                reads += 1
            elapsed = time.perf_counter() - start
        assert got == msg
        assert reads >= 12  # 24 one-byte pieces 20 ms apart: most arrive as separate reads
        assert elapsed >= 23 * 0.02 - EARLY
        data = random.Random(5).randbytes(480_000)
        with connect(proxy.listen) as sock:
            _update(
                proxy,
                "slicer_downstream",
                {"attributes": {"average_size": 1024, "size_variation": 512, "delay": 0}},
            )
            sock.sendall(data)
            assert recv_exactly(sock, len(data)) == data


def _update(proxy, toxic: str, body: dict) -> None:
    from toxiproxy.api import APIConsumer

    APIConsumer.post(f"/proxies/{proxy.name}/toxics/{toxic}", json=body)


def _recorder():
    """An upstream that records what it got and whether it saw the end of stream."""
    got: list[bytes] = []
    ended = threading.Event()

    def handler(conn: socket.socket) -> None:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                ended.set()
                return
            got.append(chunk)

    return TcpServer(handler), got, ended


def test_limit_data_cuts_and_closes(toxi: Toxiproxy) -> None:
    server, got, ended = _recorder()
    with server:
        proxy = toxi.create(upstream=server.address, name="lim")
        proxy.add_toxic(type="limit_data", stream="upstream", attributes={"bytes": 100})
        with connect(proxy.listen) as sock:
            sock.sendall(b"x" * 200)
            assert ended.wait(5)
            assert recv_until_eof(sock) == b""
        assert b"".join(got) == b"x" * 100


def test_limit_data_90_then_20_passes_90_plus_10(toxi: Toxiproxy) -> None:
    server, got, ended = _recorder()
    with server:
        proxy = toxi.create(upstream=server.address, name="lim2")
        proxy.add_toxic(type="limit_data", stream="upstream", attributes={"bytes": 100})
        with connect(proxy.listen) as sock:
            sock.sendall(b"a" * 90)
            wait_for(lambda: len(b"".join(got)) == 90, what="first 90 bytes")
            sock.sendall(b"b" * 20)
            assert ended.wait(5)
        assert b"".join(got) == b"a" * 90 + b"b" * 10


def test_limit_data_zero_passes_nothing(toxi: Toxiproxy) -> None:
    server, got, ended = _recorder()
    with server:
        proxy = toxi.create(upstream=server.address, name="lim0")
        proxy.add_toxic(type="limit_data", stream="upstream", attributes={"bytes": 0})
        with connect(proxy.listen) as sock:
            sock.sendall(b"hello")
            assert ended.wait(5)
            assert recv_until_eof(sock) == b""
        assert b"".join(got) == b""


def test_limit_data_count_survives_an_update(toxi: Toxiproxy) -> None:
    server, got, ended = _recorder()
    with server:
        proxy = toxi.create(upstream=server.address, name="limu")
        proxy.add_toxic(type="limit_data", name="lim", stream="upstream", attributes={"bytes": 100})
        with connect(proxy.listen) as sock:
            sock.sendall(b"a" * 50)
            wait_for(lambda: len(b"".join(got)) == 50, what="50 bytes")
            _update(proxy, "lim", {"attributes": {"bytes": 80}})
            sock.sendall(b"b" * 50)
            assert ended.wait(5)
        assert b"".join(got) == b"a" * 50 + b"b" * 30


def test_slow_close_delays_the_close(toxi: Toxiproxy) -> None:
    closed_at: list[float] = []

    def say_bye(conn: socket.socket) -> None:
        conn.recv(10)
        conn.sendall(b"bye")
        closed_at.append(time.perf_counter())

    with TcpServer(say_bye) as server:
        proxy = toxi.create(upstream=server.address, name="slow")
        proxy.add_toxic(type="slow_close", attributes={"delay": 300})
        with connect(proxy.listen) as sock:
            sock.sendall(b"hi")
            assert recv_until_eof(sock) == b"bye"
            ended = time.perf_counter()
    assert 0.3 - EARLY <= ended - closed_at[0] <= 0.3 + SLACK


def test_echo_stays_exact_while_noop_toxics_churn(toxi: Toxiproxy) -> None:
    with TcpServer(echo) as server:
        proxy = toxi.create(upstream=server.address, name="churn")
        stop = threading.Event()
        churned = []

        def churn() -> None:
            i = 0
            while not stop.is_set() and i < 200:
                stream = "upstream" if i % 2 else "downstream"
                proxy.add_toxic(type="noop", name=f"n{i}", stream=stream)
                if i >= 2:
                    proxy.destroy_toxic(f"n{i - 2}")
                i += 1
            churned.append(i)

        worker = threading.Thread(target=churn)
        worker.start()
        try:
            rng = random.Random(9)
            with connect(proxy.listen) as sock:
                for _ in range(200):
                    msg = rng.randbytes(rng.randint(1, 40_000))
                    sock.sendall(msg)
                    assert recv_exactly(sock, len(msg)) == msg
        finally:
            stop.set()
            worker.join()
        assert churned[0] > 0


@pytest.mark.parametrize("stream", ["upstream", "downstream"])
def test_timeout_zero_still_passes_the_end_of_stream(embedded, toxi: Toxiproxy, stream: str) -> None:
    """50 clients that give up under `timeout: 0` get their proxied connections closed
    (Toxiproxy closes on end of stream), instead of leaving them in CLOSE-WAIT."""
    ended = threading.Semaphore(0)

    def until_eof(conn: socket.socket) -> None:
        hold(conn)
        ended.release()

    with TcpServer(until_eof) as server:
        proxy = toxi.create(upstream=server.address, name=f"to_eof_{stream}")
        proxy.add_toxic(type="timeout", stream=stream, attributes={"timeout": 0})
        clients = [connect(proxy.listen) for _ in range(50)]
        for sock in clients:
            sock.sendall(b"lost")
            sock.close()
        for _ in clients:
            assert ended.acquire(timeout=5), "a server never saw its client's end of stream"
        stats = lambda: api(embedded, "GET", f"/proxies/{proxy.name}").json()["stats"]
        wait_for(lambda: stats()["connections_active"] == 0, timeout=5, what="connections closed")
