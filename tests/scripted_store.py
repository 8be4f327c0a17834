"""An event store a test scripts, which keeps the truth of every delivery it got.

It answers the ingestion contract of README "Pipeline faults" over real sockets (loopback,
a thread per connection): `POST /ingest` with `{"rows": [...]}` and `GET /events?after=N`.
Its policy is the demo's event log (harness/demo/event_log.py) with the dedupe and the
allowed lateness a test chooses; every delivery is recorded as it arrives (`deliveries`:
event id, event time, arrival), whatever the policy then does with it. It is a model
server too, just enough to be a run's target (OIP v2 ready, and infer answering class 0),
so a whole run of the CLI can drive its stream.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlparse

from harness.demo.event_log import EventLog, EventPolicy
from harness.engine.load.reference_server import FAST_BODY


@dataclass(frozen=True)
class Delivery:
    event_id: str
    event_time: float
    arrived: float


class ScriptedStore:
    def __init__(self, dedupe: bool = False, allowed_lateness: float | None = None) -> None:
        self.log = EventLog(EventPolicy(dedupe=dedupe, allowed_lateness=allowed_lateness))
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, doc: Any, status: int = 200) -> None:
                self._send(json.dumps(doc).encode(), status)

            def _send(self, body: bytes, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                if self.path.endswith("/infer"):
                    self.rfile.read(int(self.headers["Content-Length"]))
                    self._send(FAST_BODY)
                    return
                if self.path != "/ingest":
                    self._answer({"error": "not found"}, 404)
                    return
                arrived = time.time()
                rows = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["rows"]
                with store._lock:
                    store.deliveries += [Delivery(r["event_id"], r["event_time"], arrived) for r in rows]
                self._answer(store.log.ingest(rows, lambda kept: {"accepted": len(kept), "errors": []}))

            def do_GET(self) -> None:
                if self.path.startswith("/v2"):  # health and readiness
                    self._answer({"ready": True})
                    return
                if not self.path.startswith("/events"):
                    self._answer({"error": "not found"}, 404)
                    return
                after = int(parse_qs(urlparse(self.path).query).get("after", ["0"])[0])
                self._answer(store.log.listing(after))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def copies(self) -> dict[str, int]:
        """How many times each event id was delivered."""
        out: dict[str, int] = {}
        for d in self.deliveries:
            out[d.event_id] = out.get(d.event_id, 0) + 1
        return out
