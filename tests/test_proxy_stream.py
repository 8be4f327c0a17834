"""The stream toxics (http_stream_slow/stall/cut/corrupt) on a real streaming server.

The upstream is a real loopback HTTP/1.1 server that streams SSE events (chunked, one
event a chunk, as OpenAI-compatible servers do) at a pace the test sets, and records
when it sent each event and what. A real HTTP client (httpx, which checks the framing)
reads through the proxy and stamps each event as it arrives. Each toxic's effect is
compared with that truth: the added gaps, where the stream was cut, which event was
mangled; and the framing must stay valid except where a cut ends the body.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from test_proxy_support import TcpServer
from toxiproxy import Toxiproxy

from faults.proxy.client import ToxiproxyClient
from faults.proxy.http_framing import Part, PartKind, ResponseFramer
from faults.proxy.toxics.http_stream_corrupt import mangled
from harness.core.fault import Dependency, FaultContext
from harness.core.registry import fault_types

pytest_plugins = ["test_proxy_support"]  # fixtures: embedded, toxi

TOL = 0.003  # s: the proxy never delivers early; timers may fire this much before
LATE = 0.25  # s: how late a delivery may be on a busy 2-core box


@dataclass
class Sent:
    """What the server sent for one request: each event's bytes and send time."""

    events: list[bytes] = field(default_factory=list)
    at: list[float] = field(default_factory=list)


class SseServer:
    """GET /sse?n=N&gap_ms=G streams N chunked SSE events G ms apart; /json answers one
    Content-Length JSON body; /chunks streams N plain chunks. Keep-alive; records `Sent`."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.lock = threading.Lock()
        self.server = TcpServer(self._handle)
        self.address = self.server.address

    def _handle(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        while True:
            line = reader.readline()
            if not line:
                return
            target = line.split()[1].decode()
            while reader.readline() not in (b"\r\n", b""):
                pass  # headers; the requests carry no body
            path, _, query = target.partition("?")
            args = dict(kv.split("=") for kv in query.split("&") if kv)
            sent = Sent()
            with self.lock:
                self.sent.append(sent)
            if path == "/json":
                body = json.dumps({"answer": "x" * 40}).encode()
                sent.events.append(body)  # before the send: the client may read it at once
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                continue
            sse = path == "/sse"
            kind = b"text/event-stream" if sse else b"text/plain"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % kind)
            for i in range(int(args.get("n", 5))):
                if i:
                    time.sleep(int(args.get("gap_ms", 0)) / 1000)
                payload = json.dumps({"i": i, "token": f"tok{i}"}).encode()
                event = b"data: %s\n\n" % payload if sse else payload
                conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
                sent.events.append(event)
                sent.at.append(time.monotonic())
            conn.sendall(b"0\r\n\r\n")

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def sse() -> Iterator[SseServer]:
    server = SseServer()
    try:
        yield server
    finally:
        server.close()


@dataclass
class Received:
    head_at: float
    events: list[bytes]
    at: list[float]
    error: Exception | None = None


def read_events(client: httpx.Client, url: str) -> Received:
    """Stream one response; stamp each SSE event (`data:` line) or raw chunk as it arrives."""
    start = time.monotonic()
    got = Received(start, [], [])
    try:
        with client.stream("GET", url) as response:
            got.head_at = time.monotonic()
            sse = response.headers["content-type"].startswith("text/event-stream")
            parts = response.iter_lines() if sse else response.iter_raw()
            for part in parts:
                if sse and not part:
                    continue
                got.events.append(part.encode() if isinstance(part, str) else part)
                got.at.append(time.monotonic())
    except httpx.HTTPError as error:
        got.error = error
    return got


@pytest.fixture
def through(toxi: Toxiproxy, sse: SseServer) -> Iterator[tuple[Toxiproxy, httpx.Client, str]]:
    proxy = toxi.create(upstream=sse.address, name="stream")
    with httpx.Client(timeout=10) as client:  # keep-alive: one connection, several responses
        yield proxy, client, f"http://{proxy.listen}"


def test_slow_spaces_events_by_the_delay(through, sse: SseServer) -> None:
    proxy, client, base = through
    proxy.add_toxic(type="http_stream_slow", stream="downstream", attributes={"delay": 80, "after_chunks": 2})
    got = read_events(client, f"{base}/sse?n=6&gap_ms=10")
    sent = sse.sent[-1]
    assert got.error is None and len(got.events) == 6  # framing intact: the body ended cleanly
    # the first two pass at the server's pace; from the third on each is held 80 ms past
    # the one before (the server's 10 ms gaps are shorter): event i leaves the proxy
    # (i - 1) * 80 ms after the server sent event 2
    assert all(got.at[i] - sent.at[i] < LATE for i in (0, 1))
    for i in range(2, 6):
        assert (i - 1) * 0.08 - TOL <= got.at[i] - sent.at[2] <= (i - 1) * 0.08 + LATE
    assert [e.decode() for e in got.events] == [s.decode().strip() for s in sent.events]


def test_stall_holds_the_stream_once_per_response(through, sse: SseServer) -> None:
    proxy, client, base = through
    proxy.add_toxic(type="http_stream_stall", stream="downstream", attributes={"stall": 400, "after_chunks": 3})
    for _ in range(2):  # two responses on one kept-alive connection: each stalls
        got = read_events(client, f"{base}/sse?n=6&gap_ms=30")
        sent = sse.sent[-1]
        assert got.error is None and len(got.events) == 6
        held = [g - s for g, s in zip(got.at, sent.at)]  # how long each event took to arrive
        assert all(h < LATE for h in held[:3])
        assert all(0.4 - TOL <= h <= 0.4 + LATE for h in held[3:])  # from the 4th on: 400 ms later


def test_stall_before_the_first_event_is_time_to_first_token(through, sse: SseServer) -> None:
    proxy, client, base = through
    proxy.add_toxic(type="http_stream_stall", stream="downstream", attributes={"stall": 300})
    got = read_events(client, f"{base}/sse?n=3")
    sent = sse.sent[-1]
    assert got.error is None and len(got.events) == 3
    assert got.head_at - sent.at[0] < 0.3 - 0.05  # headers are not held
    assert 0.3 - TOL <= got.at[0] - sent.at[0] <= 0.3 + LATE


def test_cut_ends_the_body_after_k_events(through, sse: SseServer) -> None:
    proxy, client, base = through
    proxy.add_toxic(type="http_stream_cut", stream="downstream", attributes={"after_chunks": 3})
    got = read_events(client, f"{base}/sse?n=6&gap_ms=20")
    assert [json.loads(e.removeprefix(b"data: "))["i"] for e in got.events] == [0, 1, 2]
    assert isinstance(got.error, httpx.RemoteProtocolError)  # mid-body: an incomplete chunked read
    assert "incomplete" in str(got.error).lower() or "closed" in str(got.error).lower()
    # a new connection is cut again: it is the connection's toxic, as in Toxiproxy
    again = read_events(client, f"{base}/sse?n=6")
    assert len(again.events) == 3 and again.error is not None


def test_corrupt_mangles_event_k_and_keeps_the_framing(through, sse: SseServer) -> None:
    proxy, client, base = through
    proxy.add_toxic(type="http_stream_corrupt", stream="downstream", attributes={"after_chunks": 2})
    got = read_events(client, f"{base}/sse?n=5&gap_ms=5")
    sent = sse.sent[-1]
    assert got.error is None and len(got.events) == 5  # chunk sizes still match
    for i, (event, original) in enumerate(zip(got.events, sent.events)):
        value = event.removeprefix(b"data: ")
        assert len(event) == len(original.strip())
        if i == 2:
            with pytest.raises(json.JSONDecodeError):
                json.loads(value)
            assert value.endswith(b"~") and value[:8] == original[6:14]
        else:
            assert json.loads(value)["i"] == i


def test_corrupt_a_whole_json_body(through, sse: SseServer) -> None:
    proxy, client, base = through
    proxy.add_toxic(type="http_stream_corrupt", stream="downstream", attributes={"after_chunks": 0})
    response = client.get(f"{base}/json")
    assert response.status_code == 200 and len(response.content) == len(sse.sent[-1].events[0])
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_plain_chunks_are_units_too(through, sse: SseServer) -> None:
    proxy, client, base = through
    proxy.add_toxic(type="http_stream_slow", stream="downstream", attributes={"delay": 60})
    got = read_events(client, f"{base}/chunks?n=4")
    assert got.error is None
    assert b"".join(got.events) == b"".join(sse.sent[-1].events)
    assert got.at[-1] - got.head_at >= 4 * 0.06 - TOL


def test_fault_revert_removes_the_toxic_and_releases_the_held_stream(through, sse: SseServer, embedded) -> None:
    proxy, client, base = through
    ctx = FaultContext(toxiproxy_url=embedded.api_url,
                       dependencies={"llm": Dependency("llm", "stream", proxy.listen, sse.address)})
    cls = fault_types()["http.stream"]
    fault = cls("hold", cls.Params(dependency="llm", mode="stall", stall="60s", after_chunks=1), ctx)
    result: list[Received] = []
    reader = threading.Thread(target=lambda: result.append(read_events(client, f"{base}/sse?n=3")))
    fault.inject()
    try:
        reader.start()
        time.sleep(0.3)
        assert reader.is_alive()  # held by the 60 s stall
    finally:
        removed_at = time.monotonic()
        fault.revert()
    assert ToxiproxyClient(embedded.api_url).toxics("stream") == []
    reader.join(5)
    (got,) = result
    assert got.error is None and len(got.events) == 3
    assert got.at[-1] - removed_at < LATE


def test_a_toxic_added_mid_response_acts_from_the_next_response(through, sse: SseServer) -> None:
    """Kept-alive clients (Locust users) are mid-stream when a fault starts: the framer
    finds the next status line and acts on every response from there."""
    proxy, client, base = through
    first = Received(0.0, [], [])
    with client.stream("GET", f"{base}/sse?n=6&gap_ms=100") as response:
        for i, line in enumerate(response.iter_lines()):
            if line:
                first.events.append(line.encode())
            if i == 2:  # two events in: the toxic starts mid-response
                proxy.add_toxic(type="http_stream_stall", stream="downstream",
                                attributes={"stall": 300, "after_chunks": 1})
    assert len(first.events) == 6  # that response passed whole
    got = read_events(client, f"{base}/sse?n=3")  # same connection, next response: stalled
    sent = sse.sent[-1]
    assert got.error is None and len(got.events) == 3
    assert 0.3 - TOL <= got.at[1] - sent.at[1] <= 0.3 + LATE


def test_toxicity_zero_leaves_the_stream_alone(through, sse: SseServer) -> None:
    proxy, client, base = through
    proxy.add_toxic(type="http_stream_cut", stream="downstream", toxicity=0.0, attributes={"after_chunks": 0})
    got = read_events(client, f"{base}/sse?n=4")
    assert got.error is None and len(got.events) == 4


def test_stream_toxics_refuse_the_request_direction(through, embedded) -> None:
    from test_proxy_support import api

    r = api(embedded, "POST", "/proxies/stream/toxics", json={"type": "http_stream_cut", "stream": "upstream"})
    assert r.status_code == 400 and "use stream downstream" in r.json()["error"]


def test_framer_keeps_every_byte_and_finds_units_fed_bytewise() -> None:
    events = [b'data: {"i": %d}\r\n\r\n' % i for i in range(3)] + [b": keepalive\n\ndata: [DONE]\n\n"]
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\nX-Trailer: 1\r\n\r\n"
    stream = (b"HTTP/1.1 100 Continue\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + body
              + b"HTTP/1.1 204 No Content\r\n\r\n"
              + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd")
    for step in (1, 7, len(stream)):
        framer = ResponseFramer()
        parts = [p for i in range(0, len(stream), step) for p in framer.feed(stream[i:i + step])]
        assert b"".join(p.data for p in parts) == stream
        assert units_of(parts) == {(1, 0): events[0], (1, 1): events[1], (1, 2): events[2],
                         (1, 3): b": keepalive\n\n", (1, 4): b"data: [DONE]\n\n", (3, 0): b"abcd"}
    assert ResponseFramer().feed(b"SSH-2.0-x\r\n\r\nrest")[-1].kind is PartKind.OPAQUE


@pytest.mark.parametrize("lost", [
    b'ata: {"i": 1}\n\n\r\n0\r\n\r\n',  # mid-way through a chunked SSE body
    b'{"half": "a JSON body"}',  # mid-way through a Content-Length body: no line end before the next
    b"HTTP/1.1 2xx Odd\r\n\r\n",  # a status line that is not one
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a chunk size that is not hex
])
def test_framer_finds_the_next_response_after_bytes_it_cannot_follow(lost: bytes) -> None:
    body = b"data: 1\n\ndata: 22\n\n"
    good = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    for step in (1, 5, 1000):
        framer = ResponseFramer()
        stream = lost + good + good
        parts = [p for i in range(0, len(stream), step) for p in framer.feed(stream[i:i + step])]
        parts += framer.flush()
        assert b"".join(p.data for p in parts) == stream
        assert list(units_of(parts).values()) == [b"data: 1\n\n", b"data: 22\n\n"] * 2


def units_of(parts: list[Part]) -> dict[tuple[int, int], bytes]:
    """Body bytes by (response, unit)."""
    units: dict[tuple[int, int], bytes] = {}
    for p in parts:
        if p.kind is PartKind.BODY:
            units[p.response, p.unit] = units.get((p.response, p.unit), b"") + p.data
    return units


@pytest.mark.parametrize("content", [b'data: {"a": "b"}\n\n', b'data:[1,2]\r\n\r\n', b'{"x": 1}', b"7",
                                     b'event: x\ndata: {"k": "v"}\ndata: {"k": 2}\n\n'])
def test_mangled_is_never_json_and_keeps_the_length(content: bytes) -> None:
    out = mangled(content)
    assert len(out) == len(content) and out != content
    values = [line.partition(b":")[2].strip() for line in out.splitlines() if line.startswith(b"data:")]
    for value in values or [out]:
        with pytest.raises(json.JSONDecodeError):
            json.loads(value)
