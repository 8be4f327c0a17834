"""A tiny OIP v2 model server whose behaviour is known exactly, to check the measurements.

Each request gets a Reply from a plan (a function of the request's number): how long to
take, which status, a fallback flag, or a broken body or dropped connection. The server
counts what it served and how long each answer really took, so tests and benchmarks can
compare the harness's figures with the truth. Its "model" predicts int(row[0]) for each
row of the first input. Loopback only; asyncio, one thread.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Self

from harness.core.timed_http import IDLE_TIMEOUT, REQUEST_TIMEOUT

FAST_BODY = b'{"model_name":"m","model_version":"1","outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[0]}]}'


@dataclass(frozen=True)
class Reply:
    delay: float = 0.0  # seconds before answering
    status: int = 200
    fallback: bool = False
    broken: str | None = None  # "garbage": 200 with a non-JSON body; "close": drop the connection


Plan = Callable[[int], Reply]


def _predict(body: bytes) -> list[int]:
    request = json.loads(body)
    first = request["inputs"][0]
    shape, data = first["shape"], first["data"]
    rows = shape[0] if shape else 1
    width = len(data) // rows if rows else 0
    return [int(data[r * width]) for r in range(rows)]


class _Http(asyncio.Protocol):
    """One connection. A slow or silent client is closed: it may wait `idle_timeout` for
    the first byte of its next request (or its first), and from that byte its headers and
    body must arrive within `request_timeout`."""

    def __init__(self, server: ReferenceServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.number = server._next_connection()
        self.pending = 0  # requests read and not yet answered: their delay is the plan's
        self.timer: asyncio.TimerHandle | None = None
        self.timing_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # asyncio hands a BaseTransport; a TCP server's is a Transport
        self._wait_for_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timing_request = False

    def _wait_for_request(self) -> None:
        self._stop_timer()
        self.timer = asyncio.get_running_loop().call_later(
            self.server.idle_timeout, self._too_slow
        )

    def _too_slow(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.transport.close()

    def _time_request(self) -> None:
        """A request's first byte is in: the rest must follow within request_timeout."""
        self._stop_timer()
        self.timing_request = True
        self.timer = asyncio.get_running_loop().call_later(
            self.server.request_timeout, self._too_slow
        )

    def data_received(self, data: bytes) -> None:
        if not self.timing_request:
            self._time_request()
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            body, self.buf = self.buf[head_end + 4 : end], self.buf[end:]
            path = head.split(" ", 2)[1] if " " in head else "/"
            self.pending += 1
            if self.buf:  # the next request has begun
                self._time_request()
            else:  # every request that began is in; answers may take their time
                self._stop_timer()
            asyncio.get_running_loop().create_task(
                self.server._answer(self, path, body, time.perf_counter())
            )

    def send(self, status: int, body: bytes) -> None:
        self.pending -= 1
        if self.transport is None or self.transport.is_closing():
            return
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.transport.write(head.encode() + body)  # one send: no Nagle wait for the body
        if not self.pending and not self.timing_request:
            self._wait_for_request()


class ReferenceServer:
    """Start with `with ReferenceServer(plan) as srv:`; srv.url is its base URL."""

    def __init__(
        self,
        plan: Plan | None = None,
        *,
        fast: bool = False,
        port: int = 0,
        idle_timeout: float = IDLE_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.plan: Plan = plan or (lambda n: Reply())
        self.fast = fast  # skip the model: answer FAST_BODY at once (throughput benchmarks)
        self.port = port
        self.idle_timeout = idle_timeout  # seconds a connection may wait for a request
        self.request_timeout = request_timeout  # seconds from a request's first byte to its last
        self.requests = 0
        self.served: Counter[str] = Counter()  # "ok", "http_503", "garbage", "close", "fallback"
        self.durations: list[float] = []  # seconds each 200 answer took, as served
        # per 200 answer: (arrival on perf_counter, seconds, keep-alive connection number), so
        # a test can bound what the client saw by the client's gaps on that connection
        self.answers: list[tuple[float, float, int]] = []
        self._connections = 0
        self.first_at: float | None = None  # perf_counter when the first request arrived
        self.last_at: float | None = None  # ... and the last
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def load_seconds(self) -> float:
        """How long requests kept arriving: from the first to the last."""
        return 0.0 if self.first_at is None else self.last_at - self.first_at  # type: ignore[operator]  # last_at is set together with first_at

    def _next_connection(self) -> int:
        self._connections += 1
        return self._connections

    def _count(self, arrived: float) -> int:
        """Count a request that arrived at `arrived`; returns its number."""
        with self._lock:
            n = self.requests
            self.requests += 1
            if self.first_at is None:
                self.first_at = arrived
            self.last_at = arrived
        return n

    async def _answer(self, conn: _Http, path: str, body: bytes, t0: float) -> None:
        n = self._count(t0)
        if self.fast:
            conn.send(200, FAST_BODY)
            return
        if not path.endswith("/infer"):
            conn.send(200, b"{}")  # ready / live
            return
        reply = self.plan(n)
        if reply.delay:
            await asyncio.sleep(reply.delay - (time.perf_counter() - t0))
        with self._lock:
            if reply.broken == "close":
                self.served["close"] += 1
                conn.transport.abort()  # type: ignore[union-attr]  # a connection that got a request has its transport
                return
            if reply.broken == "garbage":
                self.served["garbage"] += 1
                conn.send(200, b"not json")
                return
            if reply.status != 200:
                self.served[f"http_{reply.status}"] += 1
                conn.send(reply.status, b'{"error":"planned"}')
                return
            out = {
                "model_name": "m",
                "model_version": "1",
                "outputs": [{"name": "label", "shape": [0], "datatype": "INT64", "data": []}],
                "parameters": {"fallback": reply.fallback},
            }
            preds = _predict(body)
            out["outputs"][0].update(shape=[len(preds)], data=preds)  # type: ignore[index]  # the reply dict literal is typed as object values
            self.served["ok"] += 1
            self.served["fallback"] += reply.fallback
            conn.send(200, json.dumps(out).encode())
            self.durations.append(time.perf_counter() - t0)
            self.answers.append((t0, self.durations[-1], conn.number))

    def __enter__(self) -> Self:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            server = loop.run_until_complete(
                loop.create_server(lambda: _Http(self), "127.0.0.1", self.port)
            )
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            try:
                loop.run_forever()
            finally:
                for task in asyncio.all_tasks(loop):
                    task.cancel()  # answers still sleeping when the server stops
                loop.run_until_complete(asyncio.sleep(0))
                server.close()
                loop.run_until_complete(server.wait_closed())
                loop.close()

        self._thread = threading.Thread(target=run, name="reference-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("reference server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


class ReferenceServerProcess:
    """A ReferenceServer in a forked process of its own (no GIL shared with the caller).

    Its counts (requests, served, durations, answers, load_seconds) are filled in when the `with`
    block ends.
    """

    def __init__(self, plan: Plan | None = None, *, fast: bool = False) -> None:
        self.plan, self.fast = plan, fast
        self.port = 0
        self.requests = 0
        self.served: Counter[str] = Counter()
        self.durations: list[float] = []
        self.answers: list[tuple[float, float, int]] = []
        self.load_seconds = 0.0
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def _serve(plan: Plan | None, fast: bool, conn: Connection) -> None:
        with ReferenceServer(plan, fast=fast) as srv:
            conn.send(srv.port)
            conn.recv()  # until told to stop
        conn.send((srv.requests, srv.served, srv.durations, srv.answers, srv.load_seconds))

    def __enter__(self) -> Self:
        ctx = multiprocessing.get_context("fork")
        self._conn, theirs = ctx.Pipe()
        self._proc = ctx.Process(
            target=self._serve, args=(self.plan, self.fast, theirs), daemon=True
        )
        self._proc.start()
        if not self._conn.poll(10):
            self.__exit__()
            raise RuntimeError("reference server process did not start")
        self.port = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._conn is not None and self._proc is not None and self._proc.is_alive():
                self._conn.send("stop")
                if self._conn.poll(15):
                    counts = self._conn.recv()
                    self.requests, self.served, self.durations, self.answers, self.load_seconds = counts
        finally:
            if self._proc is not None:
                self._proc.join(5)
                if self._proc.is_alive():
                    self._proc.kill()
                    self._proc.join()


def main() -> None:
    """`python -m harness.engine.load.reference_server PORT`: a fast endpoint for benchmarks."""
    import sys

    with ReferenceServer(fast=True, port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as srv:
        print(srv.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
