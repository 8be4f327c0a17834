"""The feature store: a separate HTTP process serving per-entity features.

It stands for the online store a real model server depends on (Feast, Redis…).
It is deliberately plain (stdlib HTTP) so that a fault — pausing it with
SIGSTOP, routing it through a slow proxy — is the only thing that makes it
misbehave.

    GET /health                → 200 {"status": "ok"}
    GET /features/{entity_id}  → 200 {"entity_id": 7, "features": {...}} | 404
    GET /features?ids=1,2,3    → 200 {"features": {"1": {...}, ...}, "missing": [...]}
"""

from __future__ import annotations

import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import parse_qs, urlsplit

import numpy as np

from harness.demo.data import ENTITY_FEATURES, N_ENTITIES, entity_table
from harness.demo.timed_http import IDLE_TIMEOUT, REQUEST_TIMEOUT, TimedRequestHandler

MAX_BATCH_IDS = 1024


class FeatureTable:
    """Entity features generated from the world seed, as JSON-ready dicts."""

    def __init__(self, world_seed: int) -> None:
        self.rows: np.ndarray = entity_table(world_seed)

    def get(self, entity_id: int) -> dict[str, float] | None:
        if not 0 <= entity_id < N_ENTITIES:
            return None
        return {name: float(v) for name, v in zip(ENTITY_FEATURES, self.rows[entity_id])}


def make_handler(
    table: FeatureTable,
    idle_timeout: float = IDLE_TIMEOUT,
    request_timeout: float = REQUEST_TIMEOUT,
) -> type[BaseHTTPRequestHandler]:
    class FeatureHandler(TimedRequestHandler):
        def send_json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            if parts == ["health"]:
                self.send_json(200, {"status": "ok", "entities": N_ENTITIES})
            elif len(parts) == 2 and parts[0] == "features":
                self.one(parts[1])
            elif parts == ["features"]:
                self.many(parse_qs(url.query).get("ids", [""])[0])
            else:
                self.send_json(404, {"error": f"no route {url.path}"})

        def one(self, raw_id: str) -> None:
            try:
                entity_id = int(raw_id)
            except ValueError:
                self.send_json(400, {"error": f"entity id must be an integer, got {raw_id!r}"})
                return
            features = table.get(entity_id)
            if features is None:
                self.send_json(404, {"error": f"unknown entity {entity_id}"})
            else:
                self.send_json(200, {"entity_id": entity_id, "features": features})

        def many(self, raw_ids: str) -> None:
            try:
                ids = [int(x) for x in raw_ids.split(",") if x]
            except ValueError:
                self.send_json(400, {"error": "ids must be comma-separated integers"})
                return
            if len(ids) > MAX_BATCH_IDS:
                self.send_json(400, {"error": f"at most {MAX_BATCH_IDS} ids per request"})
                return
            found = {str(i): table.get(i) for i in ids}
            self.send_json(
                200,
                {
                    "features": {k: v for k, v in found.items() if v is not None},
                    "missing": [int(k) for k, v in found.items() if v is None],
                },
            )

    FeatureHandler.idle_timeout = idle_timeout
    FeatureHandler.request_timeout = request_timeout
    return FeatureHandler


class FeatureServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (its timeout fired) closes the socket mid-answer:
        # routine under faults, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def run(
    host: str,
    port: int,
    world_seed: int,
    idle_timeout: float = IDLE_TIMEOUT,
    request_timeout: float = REQUEST_TIMEOUT,
) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code (0)."""
    handler = make_handler(FeatureTable(world_seed), idle_timeout, request_timeout)
    server = FeatureServer((host, port), handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"feature store on http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
