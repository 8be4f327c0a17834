"""An OIP v2 server that serves a bad model version on a script, to check rollback_time.

`POST /admin/deploy` puts version `2-bad` out for every request (every 4th of its answers
is a 500 that names it); the server takes it back by itself `rollback_after` seconds later
(None: never, only `POST /admin/rollback` does).
It notes when the bad version really stopped serving, the truth a test compares with.
Its "model" predicts int(row[0]) per row of the first input, as the reference server's.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.json_reply import send_json

BAD, GOOD = "2-bad", "1"


class ScriptedRollout:
    def __init__(self, rollback_after: float | None) -> None:
        self.rollback_after = rollback_after
        self.deployed_at: float | None = None
        self.stopped_at: float | None = None  # when the bad version stopped serving (either way)
        self.served: dict[str, int] = {}  # answers by version, failures included
        self.failed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def version_now(self) -> str:
        with self._lock:
            if self.deployed_at is None or self.stopped_at is not None:
                return GOOD
            if self.rollback_after is not None and time.time() >= self.deployed_at + self.rollback_after:
                self.stopped_at = self.deployed_at + self.rollback_after  # the scripted moment
                return GOOD
            return BAD

    def deploy(self) -> None:
        with self._lock:
            self.deployed_at, self.stopped_at = time.time(), None

    def rollback(self) -> None:
        with self._lock:
            if self.deployed_at is not None and self.stopped_at is None:
                self.stopped_at = time.time()

    def __enter__(self) -> Self:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


def _handler(server: ScriptedRollout) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: Any, status: int = 200) -> None:
            send_json(self, body, status)

        def do_GET(self) -> None:  # health, readiness: always ready
            self._send({"ready": True})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/admin/deploy":
                server.deploy()
                return self._send({"deployed": BAD})
            if self.path == "/admin/rollback":
                server.rollback()
                return self._send({"rolled_back": BAD})
            request = json.loads(body)
            first = request["inputs"][0]
            rows = first["shape"][0]
            width = len(first["data"]) // rows
            labels = [int(first["data"][r * width]) for r in range(rows)]
            version = server.version_now()
            with server._lock:
                n = server.served[version] = server.served.get(version, 0) + 1
                crash = version == BAD and n % 4 == 0
                if crash:
                    server.failed[version] = server.failed.get(version, 0) + 1
            if crash:
                return self._send({"error": "the bad version crashed", "model_version": version}, 500)
            self._send({"model_name": "m", "model_version": version,
                        "outputs": [{"name": "label", "shape": [rows], "datatype": "INT64", "data": labels}]})

    return Handler
