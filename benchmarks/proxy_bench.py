"""The fault proxy side by side with direct loopback and the real Toxiproxy, in one run.

    python benchmarks/proxy_bench.py [--rounds 3] [--bulk-mb 100] [--pings 2000]
    TOXIPROXY_SERVER=/path/to/toxiproxy-server python benchmarks/proxy_bench.py

Starts the upstreams (TCP echo, byte sink) in a child process, `aftershock proxy` (the
CLI, as users run it) and, when TOXIPROXY_SERVER names its binary, toxiproxy-server,
each with one plain proxy per upstream. Each round measures every target in turn (the
order rotates), so background load on a shared box hits all alike; the figures are
medians over rounds with their [min–max] range, and the ratios are what to rely on:

- bulk: MB/s of a one-way transfer acknowledged by the sink;
- added RTT: p50/p99 of a 64-byte request-response minus the direct p50/p99;
- short connections: conn/s of workers × connections (connect, 64 bytes each way, close);
- both pinned (servers on the last CPU, clients and upstreams on the first: every hop
  crosses CPUs) and unpinned;
- the server's own CPU time per bulk transfer and per short connection (its cost, which
  a busy shared box does not distort the way it distorts throughput), and per short
  connection the time its threads waited, runnable, for a CPU (all threads summed);
- RSS of each proxy server idle (before any connection) and after the rounds;
- API: `GET /proxies` latency while a bulk transfer flows through that server.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MSG = b"x" * 64


# ---------------------------------------------------------------- upstreams (child process)
class _Echo(asyncio.Protocol):
    def connection_made(self, transport):  # type: ignore[no-untyped-def]  # asyncio.Protocol callbacks, left unannotated in a benchmark
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.t.write(data)


class _Sink(asyncio.Protocol):
    """Counts bytes; answers `done` once it has the size announced in the first 8 bytes."""

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.t, self.head, self.want, self.got = transport, b"", None, 0

    def data_received(self, data: bytes) -> None:
        if self.want is None:
            self.head += data
            if len(self.head) < 8:
                return
            self.want, data = int.from_bytes(self.head[:8], "big"), self.head[8:]
        self.got += len(data)
        if self.got >= self.want:
            self.t.write(b"done")


async def _serve_upstreams() -> None:
    loop = asyncio.get_running_loop()
    ports = {}
    for name, proto in (("echo", _Echo), ("sink", _Sink)):
        server = await loop.create_server(proto, "127.0.0.1", 0, backlog=1024)
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
    block = memoryview(os.urandom(1 << 20))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start = time.perf_counter()
        sock.sendall(size.to_bytes(8, "big"))
        sent = 0
        while sent < size:
            n = min(len(block), size - sent)
            sock.sendall(block[:n])
            sent += n
        sock.settimeout(60)
        assert sock.recv(4) == b"done"
        return size / (time.perf_counter() - start) / 1e6


def rtts(port: int, count: int) -> list[float]:
    """Round-trip times (µs) of 64-byte request-responses on one connection."""
    out = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(count + 100):
            start = time.perf_counter()
            sock.sendall(MSG)
            got = 0
            while got < len(MSG):
                got += len(sock.recv(4096))
            if i >= 100:  # warm-up
                out.append((time.perf_counter() - start) * 1e6)
    return out


async def _short(port: int, workers: int, each: int) -> float:
    async def worker() -> None:
        for _ in range(each):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(MSG)
            await reader.readexactly(len(MSG))
            writer.close()
            await writer.wait_closed()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return workers * each / (time.perf_counter() - start)


def short_connections(port: int, workers: int, each: int) -> float:
    return asyncio.run(_short(port, workers, each))


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


# ---------------------------------------------------------------- servers
def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runqueue_wait(pid: int) -> float:
    """Seconds the threads of a process spent runnable but not running (/proc schedstat):
    on a busy box, time a server waited for a CPU rather than for work."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1])
        except (OSError, IndexError):  # a thread that just ended
            pass
    return total / 1e9


def pin(pid: int, cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of `pid` (a Go server has many)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # a thread that just ended
            pass


def api(port: int, method: str, path: str, body: object = None) -> object:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data!r}")
        return json.loads(data) if data else None
    finally:
        conn.close()


class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.proc = subprocess.Popen(
            [a.replace("{port}", str(self.port)) for a in argv], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                api(self.port, "GET", "/version")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start") from None
                time.sleep(0.05)
        time.sleep(0.3)
        self.rss_idle = rss_mib(self.proc.pid)
        self.ports: dict[str, int] = {}

    def add(self, name: str, upstream_port: int) -> None:
        made = api(self.port, "POST", "/proxies",
                   {"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream_port}"})
        self.ports[name] = int(made["listen"].rsplit(":", 1)[1])  # type: ignore[index]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def api_latency_under_bulk(server: Server, size: int, samples: int) -> list[float]:
    """`GET /proxies` times (ms) while a child process pushes `size` bytes through it."""
    child = subprocess.Popen([sys.executable, __file__, "--bulk-client", str(server.ports["sink"]), str(size)])
    time.sleep(0.1)
    out = []
    while child.poll() is None and len(out) < samples:
        start = time.perf_counter()
        api(server.port, "GET", "/proxies")
        out.append((time.perf_counter() - start) * 1e3)
        time.sleep(0.005)
    child.wait(timeout=120)
    return out


# ---------------------------------------------------------------- report
def span(values: list[float], unit: str = "", fmt: str = ".0f") -> str:
    return f"{statistics.median(values):{fmt}}{unit} [{min(values):{fmt}}–{max(values):{fmt}}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bulk-mb", type=int, default=100)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--connections", type=int, default=100, help="short connections per worker")
    parser.add_argument("--serve-upstreams", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bulk-client", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstreams:
        asyncio.run(_serve_upstreams())
        return
    if args.bulk_client:
        bulk(*args.bulk_client)
        return

    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, server_cpu = {cpus[0]}, {cpus[-1]}
    toxiproxy = os.environ.get("TOXIPROXY_SERVER")
    aftershock = shutil.which("aftershock") or str(Path(sys.executable).with_name("aftershock"))
    children: list[subprocess.Popen[str]] = []
    servers: list[Server] = []
    try:
        up = subprocess.Popen([sys.executable, __file__, "--serve-upstreams"], stdout=subprocess.PIPE, text=True)
        children.append(up)
        ports = json.loads(up.stdout.readline())  # type: ignore[union-attr]
        servers.append(Server("aftershock", [aftershock, "proxy", "--port", "{port}"]))
        if toxiproxy:
            env = {**os.environ, "LOG_LEVEL": "warn"}
            servers.append(Server("toxiproxy", [toxiproxy, "-host", "127.0.0.1", "-port", "{port}"], env))
        else:
            print("TOXIPROXY_SERVER is not set: measuring aftershock against direct loopback only")
        for server in servers:
            for name in ("echo", "sink"):
                server.add(name, ports[name])
        targets: dict[str, dict[str, int]] = {"direct": ports}
        targets.update({s.name: s.ports for s in servers})
        pids = {s.name: s.proc.pid for s in servers}
        size = args.bulk_mb * 1_000_000

        print(f"python {sys.version.split()[0]}, CPUs {cpus}, load average {os.getloadavg()[0]:.2f}; "
              f"{args.rounds} interleaved rounds")
        figures: dict[tuple[str, str, str], list[float]] = {}

        def note(mode: str, what: str, target: str, value: float) -> None:
            figures.setdefault((mode, what, target), []).append(value)

        for mode in ("pinned", "unpinned"):
            for pid in [up.pid] + [s.proc.pid for s in servers]:
                pin(pid, set(cpus) if mode == "unpinned" else server_cpu)
            pin(up.pid, set(cpus) if mode == "unpinned" else client_cpu)
            os.sched_setaffinity(0, set(cpus) if mode == "unpinned" else client_cpu)
            names = list(targets)
            for r in range(args.rounds):
                order = names[r % len(names):] + names[: r % len(names)]
                for target in order:
                    p, pid = targets[target], pids.get(target)
                    cpu = cpu_seconds(pid) if pid else 0.0
                    note(mode, "bulk", target, bulk(p["sink"], size))
                    if pid:
                        note(mode, "cpu_bulk", target, (cpu_seconds(pid) - cpu) * 1e3)
                    samples = rtts(p["echo"], args.pings)
                    note(mode, "p50", target, pct(samples, 0.5))
                    note(mode, "p99", target, pct(samples, 0.99))
                    cpu, waited = (cpu_seconds(pid), runqueue_wait(pid)) if pid else (0.0, 0.0)
                    note(mode, "conn", target, short_connections(p["echo"], args.workers, args.connections))
                    if pid:
                        shorts = args.workers * args.connections
                        note(mode, "cpu_conn", target, (cpu_seconds(pid) - cpu) * 1e6 / shorts)
                        note(mode, "wait_conn", target, (runqueue_wait(pid) - waited) * 1e6 / shorts)
        os.sched_setaffinity(0, set(cpus))
        for server in servers:
            pin(server.proc.pid, set(cpus))
        rss_after = {s.name: rss_mib(s.proc.pid) for s in servers}
        api_ms = {s.name: api_latency_under_bulk(s, size * 4, 200) for s in servers}

        names = list(targets)
        header = "| figure | " + " | ".join(names) + (" | aftershock/toxiproxy" if toxiproxy else "") + " |"
        print("\nmedian [min–max] over rounds")
        print(header)
        print("|" + "---|" * (header.count("|") - 1))

        def row(label: str, get: Callable[[str], list[float] | None], fmt: str = ".0f") -> None:
            cells = []
            for t in names:
                v = get(t)
                cells.append(span(v, fmt=fmt) if v else "–")
            ratio = ""
            if toxiproxy:
                a, b = get("aftershock"), get("toxiproxy")
                if a and b and statistics.median(b):
                    ratio = f" | {statistics.median(a) / statistics.median(b):.2f}×"
            print(f"| {label} | " + " | ".join(cells) + ratio + " |")

        for mode in ("pinned", "unpinned"):
            row(f"bulk {args.bulk_mb} MB, MB/s ({mode})", lambda t, mode=mode: figures[(mode, "bulk", t)])
            for q in ("p50", "p99"):
                def added(t: str, q: str = q, mode: str = mode) -> list[float] | None:
                    if t == "direct":
                        return None
                    return [v - d for v, d in zip(figures[(mode, q, t)], figures[(mode, q, "direct")], strict=True)]
                row(f"added RTT {q}, µs ({mode})", added)
            row(f"{args.workers} × {args.connections} short connections, conn/s ({mode})",
                lambda t, mode=mode: figures[(mode, "conn", t)])
            row(f"server CPU per bulk {args.bulk_mb} MB, ms ({mode})",
                lambda t, mode=mode: figures.get((mode, "cpu_bulk", t)))
            row(f"server CPU per short connection, µs ({mode})",
                lambda t, mode=mode: figures.get((mode, "cpu_conn", t)))
            row(f"server run-queue wait per short connection, µs ({mode})",
                lambda t, mode=mode: figures.get((mode, "wait_conn", t)))
        row("RSS idle, MiB", lambda t: [s.rss_idle for s in servers if s.name == t] or None, ".1f")
        row("RSS after the rounds, MiB", lambda t: [rss_after[t]] if t in rss_after else None, ".1f")
        row("`GET /proxies` during bulk, ms (median [min–max])", lambda t: api_ms.get(t), ".2f")
        row("`GET /proxies` during bulk, p90 ms", lambda t: [pct(api_ms[t], 0.9)] if len(api_ms.get(t, [])) > 2 else None, ".2f")
        print("\nadded RTT: each round's percentile minus the same round's direct one; the last "
              "column is aftershock's median over Toxiproxy's (throughput: higher is better; "
              "latency, CPU, RSS: lower is better).")
    finally:
        for server in servers:
            server.stop()
        for child in children:
            child.terminate()
            child.wait(timeout=10)


if __name__ == "__main__":
    main()
