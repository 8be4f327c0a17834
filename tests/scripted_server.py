"""A model server whose behaviour a test scripts, and which keeps the truth about it.

The truth suite (tests/test_truth_suite.py) runs real scenarios against it and compares
aftershock's figures with this server's own record. It runs in a process of its own
(`python -m tests.scripted_server SCRIPT.json`, real sockets, loopback only, a thread per
connection) and prints its base URL on its first line. What it does is a `Script`:

- each phase (`normal`, `fault`, `recovering`) has a latency distribution (a mixture of
  uniform ranges) and a share of requests answered 503, drawn from a seeded generator;
- a fault starts and ends when the scenario's `scripted.fault` (ScriptedFault below,
  registered through the `aftershock.faults` entry-point group like any third-party
  fault) tells it to; after the end it stays `recovering` for `recovery_s`, then it is
  `normal` again: that is the recovery moment; a fault may start again after the last one
  ended, cutting its `recovering` short;
- its alert (`GET /alert` -> {"firing": 0|1}) goes on `alert_after_s` after each fault
  starts, and off at that fault's recovery moment (so it may still fire when the next starts);
- `GET /record` returns every inference request (arrival on the Unix clock, as the
  kernel stamped it; service time from arrival to the answer's send; status; the
  keep-alive connection it came on) and the moments the phases changed (`moments`: the
  latest fault's; `earlier`: those of the faults before it).

Each answer goes out in one send with TCP_NODELAY, so what the client sees is the
scripted time plus loopback, never a Nagle/delayed-ACK stall.
"""

from __future__ import annotations

import itertools
import json
import random
import socket
import struct
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.core.fault import Fault, FaultParams, UserError

HOST = "127.0.0.1"
PHASES = ("normal", "fault", "recovering")


class Phase(BaseModel):
    """How the server answers in one phase."""

    latency_ms: list[tuple[float, float, float]] = [(1.0, 20.0, 20.0)]  # (share, low, high)
    error_share: float = 0.0  # answered 503


class Script(BaseModel):
    seed: int = 1
    normal: Phase = Phase()
    fault: Phase = Phase()
    recovering: Phase = Phase()
    recovery_s: float = 0.0  # `recovering` this long after the fault ends
    alert_after_s: float | None = None  # the alert fires this long after the fault starts


@dataclass
class Moments:
    """When the phases changed (Unix time), as the server applied them."""

    fault_started: float | None = None
    fault_ended: float | None = None
    recovered: float | None = None
    alert_on: float | None = None
    alert_off: float | None = None


@dataclass
class ScriptedServer:
    script: Script
    moments: Moments = field(default_factory=Moments)  # the latest fault's
    earlier: list[Moments] = field(default_factory=list)  # the faults before it
    # per inference request: arrival, service s, status, connection number
    record: list[tuple[float, float, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # a stream per phase: a phase's draws do not depend on how many requests came before
        self.rngs = {name: random.Random(f"{self.script.seed}-{name}") for name in PHASES}
        self.lock = threading.Lock()  # one thread per connection

    def phase_at(self, t: float) -> str:
        m = self.moments
        if m.fault_started is None or t < m.fault_started:
            return "normal"
        if m.fault_ended is None:
            return "fault"
        return "recovering" if t < m.recovered else "normal"  # type: ignore[operator]  # recovered is set with fault_ended

    def alert_at(self, t: float) -> bool:
        return any(
            m.alert_on is not None and m.alert_on <= t and (m.recovered is None or t < m.recovered)
            for m in [*self.earlier, self.moments]
        )

    def draw(self, name: str) -> tuple[float, int]:
        """(seconds to take, status) for one request in phase `name`."""
        phase: Phase = getattr(self.script, name)
        rng = self.rngs[name]
        status = 503 if rng.random() < phase.error_share else 200
        pick, acc = rng.random(), 0.0
        for share, low, high in phase.latency_ms:
            acc += share
            if pick < acc:
                return rng.uniform(low, high) / 1000, status
        _, low, high = phase.latency_ms[-1]
        return rng.uniform(low, high) / 1000, status

    # --- control, called by ScriptedFault over HTTP ------------------------------------

    def start_fault(self) -> dict[str, Any]:
        now = time.time()
        if self.moments.fault_ended is not None:  # a new fault after the last one ended
            self.earlier.append(self.moments)
            self.moments = Moments()
        m = self.moments
        if m.fault_started is None:
            m.fault_started = now
            if self.script.alert_after_s is not None:
                m.alert_on = now + self.script.alert_after_s
        return {"phase": "fault", "at": m.fault_started}

    def end_fault(self) -> dict[str, Any]:
        now = time.time()
        m = self.moments
        if m.fault_started is not None and m.fault_ended is None:
            m.fault_ended = now
            m.recovered = now + self.script.recovery_s
            if m.alert_on is not None:
                m.alert_off = max(m.recovered, m.alert_on)
                if m.alert_on >= m.recovered:  # ended before the alert could fire
                    m.alert_on = m.alert_off = None
        return {"phase": "recovering", "at": m.fault_ended}

    # --- HTTP ------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: bytes, arrival: float) -> tuple[int, bytes]:
        if path.endswith("/infer"):
            with self.lock:
                delay, status = self.draw(self.phase_at(arrival))
            time.sleep(max(0.0, delay - (time.time() - arrival)))
            out = _prediction(body) if status == 200 else b'{"error":"scripted"}'
            return status, out
        with self.lock:
            if path == "/alert":
                return 200, json.dumps({"firing": int(self.alert_at(time.time()))}).encode()
            if path == "/record":
                record = {"requests": self.record, "moments": asdict(self.moments),
                          "earlier": [asdict(m) for m in self.earlier]}
                return 200, json.dumps(record).encode()
            if path == "/script/fault/start" and method == "POST":
                return 200, json.dumps(self.start_fault()).encode()
            if path == "/script/fault/end" and method == "POST":
                return 200, json.dumps(self.end_fault()).encode()
        return 200, b"{}"  # health / readiness

    def serve_connection(self, conn: socket.socket, number: int) -> None:
        """One keep-alive connection, in its own thread: requests in turn, answers in one send."""
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        with conn:
            while True:
                head_end = pending.find(b"\r\n\r\n")
                while head_end < 0:
                    chunk, arrival = _receive(conn)
                    if not chunk:
                        return
                    pending += chunk
                    head_end = pending.find(b"\r\n\r\n")
                lines = pending[:head_end].decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                while len(pending) < head_end + 4 + length:
                    chunk, arrival = _receive(conn)
                    if not chunk:
                        return
                    pending += chunk
                body = pending[head_end + 4 : head_end + 4 + length]
                pending = pending[head_end + 4 + length :]
                status, out = self.answer(method, path, body, arrival)
                head = (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(out)}\r\n\r\n").encode()
                if path.endswith("/infer"):
                    with self.lock:
                        self.record.append((arrival, time.time() - arrival, status, number))
                try:
                    conn.sendall(head + out)  # one send: head and body together
                except OSError:
                    return


SO_TIMESTAMPNS = 35  # Linux: the kernel stamps each received packet (not in the socket module)


def _receive(conn: socket.socket) -> tuple[bytes, float]:
    """(bytes, when the kernel received the last of them): the arrival before any wake-up.

    A server process waiting for a core (2 cores, many processes) reads a request late;
    stamping it when it is read would leave that wait out of the record."""
    try:
        data, ancillary, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16))
    except OSError:
        return b"", time.time()
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", value)
            return data, seconds + nanoseconds / 1e9
    return data, time.time()


def _prediction(body: bytes) -> bytes:
    """An OIP v2 answer predicting int(row[0]) for each row of the first input."""
    first = json.loads(body)["inputs"][0]
    rows = first["shape"][0] if first["shape"] else 1
    width = len(first["data"]) // rows if rows else 0
    labels = [int(first["data"][r * width]) for r in range(rows)]
    out = {"model_name": "m", "outputs": [
        {"name": "label", "shape": [rows], "datatype": "INT64", "data": labels}]}
    return json.dumps(out).encode()


def main() -> None:
    script = Script.model_validate_json(Path(sys.argv[1]).read_text(encoding="utf-8"))
    server = ScriptedServer(script)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # before any request arrives
    listener.bind((HOST, 0))
    listener.listen(64)
    print(f"http://{HOST}:{listener.getsockname()[1]}", flush=True)
    try:
        for number in itertools.count():
            conn, _ = listener.accept()
            conn.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            threading.Thread(target=server.serve_connection, args=(conn, number), daemon=True).start()
    except KeyboardInterrupt:
        pass


# --- the fault a scenario uses to start and end the server's scripted fault -------------


class ScriptedFaultParams(FaultParams):
    server: str  # the scripted server's base URL


def _control(server: str, action: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{server}/script/fault/{action}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


class ScriptedFault(Fault):
    """`scripted.fault`: the scripted server's fault phase, from inject to revert."""

    type = "scripted.fault"
    Params = ScriptedFaultParams

    def undo_record(self) -> dict[str, Any]:
        return {"server": self.params.server}  # type: ignore[attr-defined]  # params is the ScriptedFaultParams of Params

    def inject(self) -> None:
        answer = _control(self.params.server, "start")  # type: ignore[attr-defined]  # params is the ScriptedFaultParams of Params
        if answer.get("phase") != "fault":
            raise UserError(f"the scripted server did not enter its fault: {answer}")

    def revert(self) -> None:
        _control(self.params.server, "end")  # type: ignore[attr-defined]  # params is the ScriptedFaultParams of Params

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        _control(record["server"], "end")
        return f"ended the scripted fault on {record['server']}"


if __name__ == "__main__":
    main()
