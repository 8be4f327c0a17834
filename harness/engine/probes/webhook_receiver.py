"""A tiny HTTP server on loopback that records the webhooks a target POSTs (e.g. drift alerts).

The target under test is pointed at `receiver.url`; every POST is kept with its arrival
time, path and JSON body, so detection time can be measured from what the system
actually sent out, not only from a metric it exposes. Threads, no asyncio: it runs
beside the runner's loop and inside tests alike. Its handler answers in one send and
closes slow or idle clients (`harness.core.timed_http`, the same rules as the demo's
feature store).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, Self

from harness.core.fault import UserError
from harness.core.timed_http import IDLE_TIMEOUT, REQUEST_TIMEOUT, TimedRequestHandler

MAX_BODY = 1 << 20
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Webhook:
    time: float  # Unix seconds when it arrived
    path: str
    body: Any  # the parsed JSON, or the text if it was not JSON

    def matches(self, fields: dict[str, Any]) -> bool:
        """True when the JSON body has every field with the given value (compared as text)."""
        if not fields:
            return True
        return isinstance(self.body, dict) and all(str(self.body.get(k)) == str(v) for k, v in fields.items())


class WebhookReceiver:
    """`start()`, hand `url` to the target, read `received()`, `stop()` (or use `with`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        idle_timeout: float = IDLE_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        if host not in LOOPBACK:
            raise UserError(f"webhook receiver: listen on loopback only (127.0.0.1 or ::1), not {host!r}")
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout  # seconds a connection may wait for a request
        self.request_timeout = request_timeout  # seconds from a request's first byte to its last
        self._hooks: list[Webhook] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}/"

    def start(self) -> Self:
        receiver = self

        class Handler(TimedRequestHandler):
            idle_timeout = self.idle_timeout
            request_timeout = self.request_timeout

            def do_POST(self) -> None:
                declared = int(self.headers.get("Content-Length") or 0)
                length = min(declared, MAX_BODY)
                raw = self.rfile.read(length) if length else b""
                if declared > length:
                    self.close_connection = True  # the rest is unread: the next request would not parse
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                receiver._add(Webhook(time.time(), self.path, body))
                self.send_response(204)
                self.end_headers()

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            raise UserError(f"webhook receiver: cannot listen on {self.host}:{self.port}: {exc}") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def _add(self, hook: Webhook) -> None:
        with self._lock:
            self._hooks.append(hook)

    def received(self, match: dict[str, Any] | None = None, path: str | None = None) -> list[Webhook]:
        """The webhooks so far, in arrival order, optionally only those matching."""
        with self._lock:
            hooks = list(self._hooks)
        return [h for h in hooks if h.matches(match or {}) and (path is None or h.path == path)]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
