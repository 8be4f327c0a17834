"""Every server aftershock ships closes slow and idle clients, and keeps serving others.

Real servers (the demo's model server and feature store as processes, the reference
server and the webhook receiver in this process) against real slow clients over
sockets: one that connects and sends nothing, one that trickles its headers, one that
sends its body slowly, one that goes quiet on a keep-alive connection after a request.
Each trickling client sends a byte every 0.2 s, well inside the idle timeout, so only a
deadline on the whole request (not a per-read timeout) can close it. Timeouts are short
here (idle 1 s, request 2 s); tolerances are wide for a busy machine.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.demo.data import sample
from harness.demo.launcher import free_port, stop, wait_ready
from harness.demo.model import train_models
from harness.demo.model_cache import save_models
from harness.engine.load.reference_server import ReferenceServer
from harness.engine.probes.webhook_receiver import WebhookReceiver

IDLE = 1.0
REQUEST = 2.0
TRICKLE = 0.2  # seconds between two bytes of a slow client
SLACK = 4.0  # how late a close may come on a busy 2-core machine
EARLY = 0.3  # how early: the close must come from the deadline, not from something else
CLIENTS = 6  # slow clients of each kind at once
TIMEOUT_FLAGS = ["--idle-timeout", str(IDLE), "--request-timeout", str(REQUEST)]
INFER = "/v2/models/fraud/infer"


@dataclass
class Server:
    url: str
    health: str  # a GET a normal client makes meanwhile
    post: str | None  # a path that reads a request body, if the server has one


@pytest.fixture(scope="module")
def trained_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("state")
    save_models(state, train_models(sample(6000, 0, 0), steps=250))
    return state


def start_process(argv: list[str], ready: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "harness.demo", *argv], start_new_session=True)
    try:
        wait_ready(ready, proc, 120)
    except BaseException:
        stop([proc])
        raise
    return proc


@pytest.fixture(scope="module")
def feature_store() -> Iterator[Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_process(["feature-store", "--port", str(port), *TIMEOUT_FLAGS], f"{url}/health")
    try:
        yield Server(url, "/health", None)
    finally:
        stop([proc])


@pytest.fixture(scope="module")
def model_server(trained_state: Path) -> Iterator[Server]:
    store_port, port = free_port(), free_port()
    store_url, url = f"http://127.0.0.1:{store_port}", f"http://127.0.0.1:{port}"
    procs = [start_process(["feature-store", "--port", str(store_port)], f"{store_url}/health")]
    try:
        argv = ["serve", "--port", str(port), "--feature-store", store_url]
        argv += ["--state-dir", str(trained_state), "--mode", "fragile", *TIMEOUT_FLAGS]
        procs.append(start_process(argv, f"{url}/v2/health/ready"))
        yield Server(url, "/v2/health/ready", INFER)
    finally:
        stop(procs)


@pytest.fixture(scope="module")
def reference_server() -> Iterator[Server]:
    with ReferenceServer(idle_timeout=IDLE, request_timeout=REQUEST) as srv:
        yield Server(srv.url, "/v2/health/ready", INFER)


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[Server]:
    with WebhookReceiver(idle_timeout=IDLE, request_timeout=REQUEST) as receiver:
        yield Server(receiver.url.rstrip("/"), "", "/hook")


SERVERS = ["feature_store", "model_server", "reference_server", "webhook_receiver"]


@dataclass
class Outcome:
    closed_after: float | None  # seconds from the deadline's start until the server closed
    answer: bytes  # what the server sent before closing


def slow_client(url: str, first: bytes, trickle: bytes, limit: float = 20.0) -> Outcome:
    """Send `first` at once, then `trickle` a byte every TRICKLE s, until the server closes.

    The clock starts at the first byte sent (at the connect when nothing is sent), which
    is when the server's deadline starts.
    """
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    answer = b""
    try:
        started = time.monotonic()
        if first:
            sock.sendall(first)
        pending = iter(trickle[i : i + 1] for i in range(len(trickle)))
        if not first:
            byte = next(pending, b"")
            if byte:
                sock.sendall(byte)
                started = time.monotonic()
        sock.settimeout(TRICKLE)
        while time.monotonic() - started < limit:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = None
            except ConnectionResetError:
                return Outcome(time.monotonic() - started, answer)
            if data == b"":
                return Outcome(time.monotonic() - started, answer)
            if data:
                answer += data
                continue
            byte = next(pending, b"")
            if byte:
                try:
                    sock.sendall(byte)
                except (BrokenPipeError, ConnectionResetError):
                    return Outcome(time.monotonic() - started, answer)
        return Outcome(None, answer)
    finally:
        sock.close()


def keepalive_then_quiet(url: str, request: bytes) -> Outcome:
    """One whole request on a keep-alive connection, then silence: the idle timeout starts
    at the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        sock.settimeout(10)
        answer = sock.recv(65536)
        answered = time.monotonic()
        sock.settimeout(20)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return Outcome(time.monotonic() - answered, answer)


Client = Callable[[], Outcome]


def kinds(server: Server) -> dict[str, tuple[Client, float]]:
    """Each slow client, and the timeout that must close it."""
    host = server.url.removeprefix("http://")
    head = f"GET {server.health or '/'} HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode() + b"a" * 400
    if server.health:
        whole = f"GET {server.health} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    else:
        whole = f"POST {server.post} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    out = {
        "silent": (lambda: slow_client(server.url, b"", b""), IDLE),
        "slow headers": (lambda: slow_client(server.url, b"", head), REQUEST),
        "idle keep-alive": (lambda: keepalive_then_quiet(server.url, whole), IDLE),
    }
    if server.post:
        body_head = (
            f"POST {server.post} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Content-Length: 5000\r\n\r\n"
        ).encode()
        out["slow body"] = (lambda: slow_client(server.url, body_head, b" " * 5000), REQUEST)
    return out


@pytest.mark.parametrize("name", SERVERS)
def test_slow_and_idle_clients_are_closed_while_others_are_served(
    name: str, request: pytest.FixtureRequest
) -> None:
    server: Server = request.getfixturevalue(name)
    outcomes: dict[str, list[Outcome]] = {}
    lock = threading.Lock()

    def run(kind: str, client: Client) -> None:
        outcome = client()
        with lock:
            outcomes.setdefault(kind, []).append(outcome)

    threads = [
        threading.Thread(target=run, args=(kind, client), daemon=True)
        for kind, (client, _) in kinds(server).items()
        for _ in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    served = []  # a normal client, while the slow ones hold their connections
    with httpx.Client(base_url=server.url, timeout=5) as client:
        while any(t.is_alive() for t in threads) and len(served) < 200:
            if server.health:
                served.append(client.get(server.health).status_code)
            else:
                served.append(client.post(server.post, json={"event": "ping"}).status_code)
            time.sleep(0.05)
    for t in threads:
        t.join(30)
    assert served and all(200 <= code < 300 for code in served), served
    assert len(served) >= 10, "the normal client was served too few times meanwhile"
    for kind, (_, timeout) in kinds(server).items():
        for outcome in outcomes[kind]:
            assert outcome.closed_after is not None, f"{kind}: never closed"
            assert timeout - EARLY <= outcome.closed_after <= timeout + SLACK, (kind, outcome)
            if kind == "idle keep-alive":
                assert outcome.answer.startswith(b"HTTP/1.1 2"), outcome.answer[:100]


def test_model_server_answers_408_to_a_request_that_never_finished(model_server: Server) -> None:
    host = model_server.url.removeprefix("http://")
    head = f"GET /v2/health/ready HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode() + b"a" * 400
    outcome = slow_client(model_server.url, b"", head)
    assert outcome.answer.startswith(b"HTTP/1.1 408"), outcome.answer[:100]
