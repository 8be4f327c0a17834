"""The HTTP front of the proxy API: the standard library's threading HTTP server.

It runs in its own thread and hands each routed request to `Api.handle` on the
proxies' event loop, so the API answers while bulk data flows (the loop only runs a
handler, never HTTP parsing), and the proxy process loads no web framework: the
standard library's server is well kept, and it is all a dozen JSON routes need.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import uuid
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from faults.proxy.api import BROWSER_REFUSED, MAX_BODY, Api, Reply, error_reply
from faults.proxy.errors import BAD_REQUEST_BODY, ApiError

HANDLER_TIMEOUT = 60  # seconds a request may wait for the event loop before a 503


class _TooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of Toxiproxy
    server: ApiHttpServer

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ConnectionError:
            self.close_connection = True

    def _serve(self) -> None:
        reply = self._answer()
        self.send_response_only(reply.status)
        self.send_header("Date", self.date_time_string())
        self.send_header("X-Toxiproxy-Request-Id", uuid.uuid4().hex[:20])
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        if reply.status != 204:
            self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and reply.status != 204:
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_PATCH = do_DELETE = do_PUT = do_OPTIONS = _serve  # routed below

    def _answer(self) -> Reply:
        if self.headers.get("User-Agent", "").startswith("Mozilla/"):
            return BROWSER_REFUSED
        routed = self.server.api.route(self.command, unquote(urlsplit(self.path).path))
        if isinstance(routed, Reply):
            self._discard_body()
            return routed
        handler, params = routed
        try:
            body = self._read_body()
        except _TooLarge:
            self.close_connection = True  # the rest of the body is not read
            return error_reply(BAD_REQUEST_BODY.joined(f"the body is larger than {MAX_BODY} bytes"))
        except (ValueError, ApiError):
            self.close_connection = True
            return error_reply(BAD_REQUEST_BODY.joined("unreadable body framing"))
        try:
            future = asyncio.run_coroutine_threadsafe(self.server.api.handle(handler, params, body),
                                                      self.server.loop)
            return future.result(HANDLER_TIMEOUT)
        except (RuntimeError, FutureTimeout):  # the loop closed or is stuck: say so, not hang
            self.close_connection = True
            return Reply(503, b"the proxy server is stopping\n", "text/plain; charset=utf-8")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError(length)
        if length > MAX_BODY:
            raise _TooLarge
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = int(self.rfile.readline(64).split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise _TooLarge
            body += self.rfile.read(size)
            self.rfile.readline(8)

    def _discard_body(self) -> None:
        try:
            self._read_body()
        except (ValueError, ApiError, _TooLarge):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet, as toxiproxy-server at LOG_LEVEL=warn


class ApiHttpServer(ThreadingHTTPServer):
    """Serves `api` on (host, port) from a thread; requests run on `loop`."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, api: Api, loop: asyncio.AbstractEventLoop) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.api = api
        self.loop = loop
        super().__init__((host, port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="aftershock-proxy-api", daemon=True)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (getfqdn): nothing needs it."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

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
