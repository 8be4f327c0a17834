"""Keep-alive round trips to every server aftershock ships, beside a two-send control.

    python benchmarks/keepalive_bench.py [--requests 200]

One client, one reused connection, sequential requests; the median and p95 per server.
The control is a stdlib handler as the feature store was written before (headers and body
in two sends, Nagle on): on Linux each of its answers waits for the client's delayed ACK
(~40 ms). A server that answers in one send (or with TCP_NODELAY) does not.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.demo.launcher import free_port, stop, wait_ready
from harness.engine.load.reference_server import ReferenceServer
from harness.engine.probes.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]


class TwoSends(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()  # first send
        self.wfile.write(body)  # second send

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def control() -> Iterator[tuple[str, str, str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TwoSends)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", "GET", "/health"
    finally:
        server.shutdown()


@contextmanager
def demo_process(argv: list[str], ready: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "harness.demo", *argv], start_new_session=True)
    try:
        wait_ready(ready, proc, 120)
        yield proc
    finally:
        stop([proc])


def round_trips(address: str, method: str, path: str, n: int) -> list[float]:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port))
    body = b"{}" if method == "POST" else None
    times = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request(method, path, body=body)
        conn.getresponse().read()
        times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return times


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--requests", type=int, default=200)
    n = args.parse_args().requests
    results: dict[str, list[float]] = {}
    with control() as (address, method, path):
        results["control: two sends, Nagle on"] = round_trips(address, method, path, n)
    store_port, model_port = free_port(), free_port()
    store = f"http://127.0.0.1:{store_port}"
    with demo_process(["feature-store", "--port", str(store_port)], f"{store}/health"):
        results["demo feature store"] = round_trips(f"127.0.0.1:{store_port}", "GET", "/features/7", n)
        state = Path.home() / ".cache" / "aftershock" / "demo"
        argv = ["serve", "--port", str(model_port), "--feature-store", store, "--state-dir", str(state)]
        with demo_process(argv, f"http://127.0.0.1:{model_port}/v2/health/ready"):
            results["demo model server"] = round_trips(
                f"127.0.0.1:{model_port}", "GET", "/v2/health/ready", n
            )
    with ReferenceServer() as srv:
        results["reference server"] = round_trips(srv.url[7:], "GET", "/v2/health/ready", n)
    with WebhookReceiver() as receiver:
        results["webhook receiver"] = round_trips(receiver.url[7:].rstrip("/"), "POST", "/hook", n)
    print(f"{'server':32} {'median ms':>10} {'p95 ms':>8}")
    for name, times in results.items():
        times.sort()
        print(f"{name:32} {statistics.median(times):10.2f} {times[int(0.95 * len(times))]:8.2f}")


if __name__ == "__main__":
    main()
