"""An OpenAI-compatible streaming server with scripted token timing, which keeps the truth.

`python -m tests.stream_server SCRIPT.json` serves on a free loopback port (a thread per
connection, real sockets, HTTP/1.1 keep-alive, chunked bodies, TCP_NODELAY so each event
leaves in its own segment) and prints its base URL on its first line. Per request it
waits a drawn time to first token, then sends `tokens` content deltas with drawn gaps
(each a seeded choice among a few levels), a finish chunk, a usage chunk when asked, and `[DONE]`.

The last user message (or prompt) picks what goes wrong: `mode:cut` closes the
connection after `fault_after` tokens, `mode:stall` goes silent after them for
`stall_s` and hangs up, `mode:pause` goes as silent and then finishes its answer,
`mode:malformed` sends a chunk that is not JSON, `mode:abort` an error event; anything
else is answered normally.

`GET /record` returns every generation request as the server saw it: its mode and, on
the Unix clock, when the kernel received it and when each content token was sent.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tests.json_reply import send_json

HOST = "127.0.0.1"
SO_TIMESTAMPNS = 35  # Linux: the kernel stamps each received packet (not in the socket module)


def peek_arrival(conn: socket.socket) -> float:
    """When the kernel received the next request's first bytes (Unix clock), read without
    consuming them: a server thread waiting for a core (2 busy cores) reads a request late,
    and stamping it when read would leave that wait out of the record."""
    try:
        _, ancillary, _, _ = conn.recvmsg(1, socket.CMSG_SPACE(16), socket.MSG_PEEK)
    except OSError:
        return time.time()
    stamps = [v for level, kind, v in ancillary if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS]
    if not stamps:
        return time.time()
    seconds, nanoseconds = struct.unpack("qq", stamps[0])
    return seconds + nanoseconds / 1e9


class StreamScript(BaseModel):
    seed: int = 1
    tokens: int = 8
    ttft_ms: list[float] = [30.0, 60.0, 90.0]  # drawn in turn at random
    itl_ms: list[float] = [5.0, 15.0, 25.0]
    fault_after: int = 3  # tokens sent before a scripted fault
    stall_s: float = 3.0


class StreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: StreamScript) -> None:
        super().__init__((HOST, 0), StreamHandler)
        self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # accepted sockets inherit it
        self.script = script
        self.rng = random.Random(script.seed)
        self.lock = threading.Lock()
        self.record: list[dict[str, Any]] = []

    def draw(self) -> tuple[float, list[float]]:
        """The next request's time to first token and gaps, in seconds."""
        s = self.script
        with self.lock:
            ttft = self.rng.choice(s.ttft_ms) / 1000
            gaps = [self.rng.choice(s.itl_ms) / 1000 for _ in range(s.tokens - 1)]
        return ttft, gaps


def _chunk(content: str | None = None, finish: str | None = None, chat: bool = True) -> dict[str, Any]:
    if not chat:  # /v1/completions: the text itself, no delta
        return {"id": "s", "object": "text_completion", "model": "scripted",
                "choices": [{"index": 0, "text": content or "", "finish_reason": finish}]}
    delta = {"content": content} if content is not None else {}
    return {"id": "s", "object": "chat.completion.chunk", "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class StreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StreamServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.arrived = time.time()

    def handle_one_request(self) -> None:
        self.arrived = peek_arrival(self.connection)
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, body: Any, status: int = 200) -> None:
        send_json(self, body, status)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json({"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        elif self.path == "/record":
            with self.server.lock:
                self._json(list(self.server.record))
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        arrived = self.arrived
        text = body["messages"][-1]["content"] if "messages" in body else body.get("prompt", "")
        mode = text.removeprefix("mode:") if text.startswith("mode:") else "ok"
        entry: dict[str, Any] = {"mode": mode, "arrived": arrived, "sent": [], "prompt_words": len(text.split())}
        with self.server.lock:
            self.server.record.append(entry)
        if not body.get("stream"):
            self._whole(body, entry)
            return
        self._stream(body, mode, entry)

    def _whole(self, body: dict[str, Any], entry: dict[str, Any]) -> None:
        """A non-streamed answer after the whole drawn generation time."""
        ttft, gaps = self.server.draw()
        time.sleep(ttft + sum(gaps))
        entry["sent"].append(time.time())
        text = " ".join(f"t{i}" for i in range(self.server.script.tokens))
        choice = {"index": 0, "finish_reason": "length"}
        choice |= {"message": {"role": "assistant", "content": text}} if "messages" in body else {"text": text}
        self._json({"choices": [choice], "usage": {"completion_tokens": self.server.script.tokens}})

    def _event(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))  # one chunk, one send

    def _stream(self, body: dict[str, Any], mode: str, entry: dict[str, Any]) -> None:
        script = self.server.script
        ttft, gaps = self.server.draw()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chat = "messages" in body
        if chat:
            self._event(json.dumps({**_chunk(), "choices": [{"index": 0, "delta": {"role": "assistant"},
                                                             "finish_reason": None}]}))
        try:
            for i, wait in enumerate([ttft, *gaps]):
                if mode == "pause" and i == script.fault_after:  # silent, then the rest of the answer
                    time.sleep(script.stall_s)
                elif mode != "ok" and i == script.fault_after:
                    self._fault(mode)
                    return
                time.sleep(wait)
                entry["sent"].append(time.time())
                self._event(json.dumps(_chunk(f"t{i} ", chat=chat)))
            self._event(json.dumps(_chunk(finish="stop", chat=chat)))
            if body.get("stream_options", {}).get("include_usage"):
                self._event(json.dumps({"id": "s", "choices": [], "usage": {"completion_tokens": script.tokens}}))
            self._event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a stall it timed out)

    def _fault(self, mode: str) -> None:
        self.close_connection = mode != "abort"  # an error event ends the body cleanly: keep-alive
        if mode == "cut":
            self.connection.shutdown(socket.SHUT_RDWR)  # mid-body: no last chunk, no [DONE]
        elif mode == "stall":
            time.sleep(self.server.script.stall_s)
        elif mode == "malformed":
            self._event('{"choices": [{"delta": {"content": "t')
            time.sleep(self.server.script.stall_s)  # the client must not wait for more
        elif mode == "abort":
            self._event(json.dumps({"error": {"message": "scripted engine failure"}}))
            self.wfile.write(b"0\r\n\r\n")


@contextlib.contextmanager
def running(script: StreamScript, folder: Path) -> Iterator[str]:
    """The server as a child process serving `script`, for a with-block: its base URL."""
    path = folder / "script.json"
    path.write_text(script.model_dump_json())
    proc = subprocess.Popen([sys.executable, "-m", "tests.stream_server", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(10)


def record(url: str) -> list[dict[str, Any]]:
    """Every generation request the server at `url` has seen (see the module docstring)."""
    with urllib.request.urlopen(url + "/record", timeout=5) as resp:
        return json.loads(resp.read())


def main() -> None:
    script = StreamScript.model_validate_json(Path(sys.argv[1]).read_text(encoding="utf-8"))
    server = StreamServer(script)
    print(f"http://{HOST}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
