"""Embedded fault proxy vs direct loopback, measured side by side in one run.

    python benchmarks/proxy_bench.py [--bulk-mb 100] [--pings 5000] [--http-seconds 5]

Starts, as child processes, the upstreams (TCP echo, a byte sink, an HTTP echo) and
the proxy server (`faults.proxy.server.serve`, as `aftershock proxy` runs it), then
measures each figure direct and through the proxy:

- bulk: MB/s of a 100 MB one-way transfer, and the proxy/direct ratio;
- added latency of a 64-byte request-response (p50/p99 µs), with no toxics and with
  a 0 ms latency toxic (the toxic pipeline, not a delay);
- requests/s of an HTTP echo at concurrency 50 (keep-alive connections).

Goals (issue 3): added p50 <= 150 µs with no toxics; bulk >= 30% of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faults.proxy.client import ToxiproxyClient

HTTP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


# ---------------------------------------------------------------- upstreams (child process)
class _Echo(asyncio.Protocol):
    def connection_made(self, transport):  # type: ignore[no-untyped-def]  # asyncio.Protocol callbacks, left unannotated in a benchmark
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.t.write(data)


class _Sink(asyncio.Protocol):
    """Counts bytes; answers `done` once it has the size announced in the first 8 bytes."""

    def connection_made(self, transport):  # type: ignore[no-untyped-def]  # asyncio.Protocol callbacks, left unannotated in a benchmark
        self.t, self.want, self.got = transport, None, 0

    def data_received(self, data: bytes) -> None:
        if self.want is None:
            self.want = int.from_bytes(data[:8], "big")
            data = data[8:]
        self.got += len(data)
        if self.got >= self.want:
            self.t.write(b"done")


class _HttpEcho(asyncio.Protocol):
    """Answers each GET on a keep-alive connection (heads end with an empty line)."""

    def connection_made(self, transport):  # type: ignore[no-untyped-def]  # asyncio.Protocol callbacks, left unannotated in a benchmark
        self.t, self.buf = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4 :]
            self.t.write(HTTP_RESPONSE * n)


async def _serve_upstreams() -> None:
    loop = asyncio.get_running_loop()
    ports = {}
    for name, proto in (("echo", _Echo), ("sink", _Sink), ("http", _HttpEcho)):
        server = await loop.create_server(proto, "127.0.0.1", 0)
        ports[name] = server.sockets[0].getsockname()[1]
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- measurements
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bulk(port: int, size: int) -> float:
    """MB/s of `size` bytes sent one way and acknowledged by the sink."""
    block = os.urandom(1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start = time.perf_counter()
        sock.sendall(size.to_bytes(8, "big"))
        sent = 0
        while sent < size:
            sock.sendall(block[: min(len(block), size - sent)])
            sent += min(len(block), size - sent)
        assert sock.recv(4) == b"done"
        return size / (time.perf_counter() - start) / 1e6


def pings(port: int, count: int) -> list[float]:
    """Round-trip times (µs) of 64-byte request-responses on one connection."""
    msg = b"x" * 64
    out = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(count + 200):
            start = time.perf_counter()
            sock.sendall(msg)
            got = 0
            while got < len(msg):
                got += len(sock.recv(4096))
            if i >= 200:  # warm-up
                out.append((time.perf_counter() - start) * 1e6)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


async def _http_load(port: int, concurrency: int, seconds: float) -> float:
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    done = 0
    deadline = time.perf_counter() + seconds

    async def user() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            writer.write(request)
            await reader.readexactly(len(HTTP_RESPONSE))
            done += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


def http_rps(port: int, concurrency: int, seconds: float) -> float:
    return asyncio.run(_http_load(port, concurrency, seconds))


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bulk-mb", type=int, default=100)
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--http-seconds", type=float, default=5.0)
    parser.add_argument("--serve-upstreams", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstreams:
        asyncio.run(_serve_upstreams())
        return

    children = []
    try:
        up = subprocess.Popen(
            [sys.executable, __file__, "--serve-upstreams"], stdout=subprocess.PIPE, text=True
        )
        children.append(up)
        ports = json.loads(up.stdout.readline())
        api_port = free_port()
        code = f"from faults.proxy.server import serve; serve('127.0.0.1', {api_port}, None, None)"
        children.append(
            subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.DEVNULL)
        )
        client = ToxiproxyClient(f"http://127.0.0.1:{api_port}")
        for _ in range(200):
            if client.running():
                break
            time.sleep(0.05)
        via = {}
        for name in ("echo", "sink", "http"):
            listen = client.create_proxy(name, f"127.0.0.1:{ports[name]}").listen
            via[name] = int(listen.rsplit(":", 1)[1])
        listen = client.create_proxy(
            "echo0",
            f"127.0.0.1:{ports['echo']}",
            toxics=[
                {"type": "latency", "attributes": {"latency": 0}},
                {"type": "latency", "stream": "upstream", "attributes": {"latency": 0}},
            ],
        ).listen
        via["echo0"] = int(listen.rsplit(":", 1)[1])

        size = args.bulk_mb * 1_000_000
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        )
        direct_bulk = bulk(ports["sink"], size)
        proxy_bulk = bulk(via["sink"], size)
        print(
            f"bulk {args.bulk_mb} MB: direct {direct_bulk:.0f} MB/s, via proxy {proxy_bulk:.0f} MB/s, "
            f"ratio {proxy_bulk / direct_bulk:.0%} (goal >= 30%)"
        )

        direct: list[float] = []
        plain: list[float] = []
        toxic: list[float] = []
        for _ in range(5):  # interleaved rounds, so background load hits all three alike
            direct += pings(ports["echo"], args.pings // 5)
            plain += pings(via["echo"], args.pings // 5)
            toxic += pings(via["echo0"], args.pings // 5)
        for label, values in (("no toxics", plain), ("0 ms latency toxic each way", toxic)):
            print(
                f"request-response {label}: p50 {pct(values, 0.5):.0f} µs (direct {pct(direct, 0.5):.0f}), "
                f"added p50 {pct(values, 0.5) - pct(direct, 0.5):.0f} µs, "
                f"p99 {pct(values, 0.99):.0f} µs (direct {pct(direct, 0.99):.0f}), "
                f"added p99 {pct(values, 0.99) - pct(direct, 0.99):.0f} µs"
            )
        print("  goal: added p50 <= 150 µs with no toxics")

        direct_rps = http_rps(ports["http"], 50, args.http_seconds)
        proxy_rps = http_rps(via["http"], 50, args.http_seconds)
        print(
            f"HTTP echo, 50 concurrent keep-alive clients: direct {direct_rps:.0f} req/s, "
            f"via proxy {proxy_rps:.0f} req/s, ratio {proxy_rps / direct_rps:.0%}"
        )
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
