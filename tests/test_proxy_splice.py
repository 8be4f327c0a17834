"""The zero-copy relay (faults/proxy/splice.py): it engages on a bulk transfer, and
switching it off and on again (a toxic added, then removed) mid-transfer loses and
reorders no byte; its pipes are closed when it stops and when the connection ends."""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import socket
import struct
import termios
import threading

import pytest
from test_proxy_support import TcpServer, api, connect, recv_until_eof, wait_for
from toxiproxy import Toxiproxy

from faults.proxy import EmbeddedProxy, splice

pytest_plugins = ["test_proxy_support"]  # fixtures: embedded, toxi
pytestmark = pytest.mark.skipif(not splice.AVAILABLE, reason="os.splice is Linux-only")

MIB = 1 << 20
PIECE = 256 * 1024


def pipes() -> set[int]:
    """Pipe descriptors this process holds (the proxy runs in a thread of it)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                found.add(int(fd))
        except OSError:
            pass
    return found


def bytes_in(fds: set[int]) -> int:
    """Bytes waiting in these pipes (FIONREAD: what the kernel holds in them)."""
    total = 0
    for fd in fds:
        try:
            total += struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            pass
    return total


def test_toxic_switches_mid_splice_lose_and_reorder_nothing(embedded: EmbeddedProxy, toxi: Toxiproxy) -> None:
    """The upstream stalls (so the proxy's pipe fills), a toxic is added (the pipe's bytes
    go out first), the upstream reads on, the toxic goes (splicing again); twice."""
    data = random.Random(17).randbytes(64 * MIB)
    reading = threading.Event()
    reading.set()

    def digest_of_all(conn: socket.socket) -> None:
        hashed, size = hashlib.sha256(), 0
        while chunk := conn.recv(MIB):
            hashed.update(chunk)
            size += len(chunk)
            reading.wait(10)
        conn.sendall(f"{size} {hashed.hexdigest()}".encode())

    baseline = pipes()
    with TcpServer(digest_of_all) as upstream:
        proxy = toxi.create(upstream=upstream.address, name="bulk")
        sock = connect(proxy.listen, timeout=30)

        def send_all() -> None:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        toxic = {"type": "latency", "stream": "upstream", "attributes": {"latency": 1}, "name": "t"}
        for step in range(2):
            wait_for(lambda: pipes() - baseline, timeout=10, what=f"the splice to engage (step {step})")
            reading.clear()  # the upstream stalls: the proxy's pipe fills
            wait_for(lambda: bytes_in(pipes() - baseline) > 0, timeout=10, what="bytes held in the pipe")
            r = api(embedded, "POST", "/proxies/bulk/toxics", json=toxic)
            assert r.status_code == 200, r.text
            assert not pipes() - baseline  # no longer splicing: the pipe is closed
            reading.set()
            assert api(embedded, "DELETE", "/proxies/bulk/toxics/t").status_code == 204
        sender.join(30)
        answer = recv_until_eof(sock).decode()
        sock.close()
    assert answer == f"{len(data)} {hashlib.sha256(data).hexdigest()}"
    stats = api(embedded, "GET", "/proxies/bulk").json()["stats"]
    assert stats["upstream"] == {"bytes_received": len(data), "bytes_sent": len(data)}
    wait_for(lambda: pipes() == baseline, timeout=10, what="the pipes to close")


def test_server_closing_mid_splice_closes_the_client_and_the_pipes(
    embedded: EmbeddedProxy, toxi: Toxiproxy
) -> None:
    def read_some_then_close(conn: socket.socket) -> None:
        got = 0
        while got < 3 * MIB and (data := conn.recv(MIB)):
            got += len(data)

    baseline = pipes()
    with TcpServer(read_some_then_close) as upstream:
        proxy = toxi.create(upstream=upstream.address, name="cut")
        sock = connect(proxy.listen, timeout=10)
        with pytest.raises(OSError):  # reset, or a broken pipe, once the far end is gone
            for _ in range(400):  # 100 MiB at most
                sock.sendall(b"z" * PIECE)
        sock.close()
    wait_for(lambda: api(embedded, "GET", "/proxies/cut").json()["stats"]["connections_active"] == 0,
             timeout=10, what="the connection to close")
    wait_for(lambda: pipes() == baseline, timeout=10, what="the pipes to close")
