"""The HTTP front of the proxy API: h11 over a thread per client connection.

It runs beside the proxies' event loop, not on it: each routed request is handed to
`Api.handle` on that loop, so the loop only runs a handler, never HTTP parsing, and the
API answers while bulk data flows. h11 (the HTTP/1.1 state machine under uvicorn and
httpx, already a dependency) does the framing; with `socketserver` it costs the proxy
process well under a MiB, where `http.server` (the email package) costs three and a
web framework ten.
"""

from __future__ import annotations

import asyncio
import http
import os
import socket
import socketserver
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import unquote, urlsplit

import h11

from faults.proxy.api import BROWSER_REFUSED, MAX_BODY, Api, Reply, error_reply
from faults.proxy.errors import BAD_REQUEST_BODY

HANDLER_TIMEOUT = 60  # seconds a request may wait for the event loop before a 503
MAX_HEAD = 64 * 1024  # bytes of request line and headers
STOPPING = Reply(503, b"the proxy server is stopping\n", "text/plain; charset=utf-8")


class _Client(socketserver.BaseRequestHandler):
    """One client connection: requests in turn, as long as both sides keep it alive."""

    server: ApiHttpServer
    request: socket.socket

    def handle(self) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            while True:
                event = self._next(conn)
                if not isinstance(event, h11.Request):
                    return  # closed, or a protocol error
                reply, keep = self._answer(conn, event)
                self._send(conn, event, reply, keep)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, OSError):
            return

    def _next(self, conn: h11.Connection) -> type[h11.NEED_DATA | h11.PAUSED] | h11.Event:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(self.request.recv(65536))

    def _answer(self, conn: h11.Connection, request: h11.Request) -> tuple[Reply, bool]:
        """The reply, and whether the connection may stay open (its body was read)."""
        headers = dict(request.headers)
        if headers.get(b"user-agent", b"").startswith(b"Mozilla/"):
            return BROWSER_REFUSED, self._skip_body(conn)
        method = request.method.decode("ascii", "replace")
        path = unquote(urlsplit(request.target.decode("ascii", "replace")).path)
        routed = self.server.api.route(method, path)
        if isinstance(routed, Reply):
            return routed, self._skip_body(conn)
        body = self._body(conn)
        if body is None:
            return error_reply(BAD_REQUEST_BODY.joined(f"the body is larger than {MAX_BODY} bytes")), False
        handler, params = routed
        try:
            future = asyncio.run_coroutine_threadsafe(self.server.api.handle(handler, params, body),
                                                      self.server.loop)
            return future.result(HANDLER_TIMEOUT), True
        except (RuntimeError, FutureTimeout):  # the loop closed or is stuck: say so, do not hang
            return STOPPING, False

    def _body(self, conn: h11.Connection) -> bytes | None:
        """The request body (h11 undoes chunking); None once it grows past MAX_BODY."""
        body = bytearray()
        while True:
            event = self._next(conn)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise h11.RemoteProtocolError("the request ended inside its body")

    def _skip_body(self, conn: h11.Connection) -> bool:
        return self._body(conn) is not None

    def _send(self, conn: h11.Connection, request: h11.Request, reply: Reply, keep: bool) -> None:
        headers = [
            ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())),
            ("X-Toxiproxy-Request-Id", os.urandom(10).hex()),
            *reply.headers.items(),
        ]
        if reply.content_type is not None:
            headers.append(("Content-Type", reply.content_type))
        if reply.status != 204:
            headers.append(("Content-Length", str(len(reply.body))))
        if not keep:
            headers.append(("Connection", "close"))
        reason = http.HTTPStatus(reply.status).phrase
        out = conn.send(h11.Response(status_code=reply.status, headers=headers, reason=reason))
        if reply.body and request.method != b"HEAD" and reply.status != 204:
            out += conn.send(h11.Data(data=reply.body))
        out += conn.send(h11.EndOfMessage())
        self.request.sendall(out)


class ApiHttpServer(socketserver.ThreadingTCPServer):
    """Serves `api` on (host, port) from a thread; each request's handler runs on `loop`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, api: Api, loop: asyncio.AbstractEventLoop) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.api = api
        self.loop = loop
        super().__init__((host, port), _Client)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="aftershock-proxy-api", daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and close the listener (blocks until the serving thread ends)."""
        if self._thread.is_alive():
            self.shutdown()
        self.server_close()
