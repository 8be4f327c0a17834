"""A stdlib HTTP/1.1 request handler that answers in one send and times out slow clients.

Two things ``BaseHTTPRequestHandler`` gets wrong for a keep-alive server:

* It writes the headers and the body in two sends. On a reused connection the second,
  small send waits (Nagle) for the ACK of the first, which the client delays (~40 ms on
  Linux): every answer costs 40 ms. Here the answer is buffered and sent once, and
  TCP_NODELAY is set as well.
* It waits for a client forever: one that connects and sends nothing, trickles its
  headers or its body, or keeps an idle connection, holds a thread for good. Here a
  connection may wait ``idle_timeout`` for the first byte of its next request; from that
  byte, the whole request (headers and body) must arrive within ``request_timeout``; a
  send may block for at most ``request_timeout``. Then the connection is closed.

Only the standard library: the demo's servers use it. The harness has its own copy
(harness/core/timed_http.py): the demo stands for a user's service and imports nothing
from the rest of aftershock, nor the rest from it.
"""

from __future__ import annotations

import io
import socket
import time
from http.server import BaseHTTPRequestHandler

IDLE_TIMEOUT = 5.0  # seconds a connection may wait for its next request (or its first)
REQUEST_TIMEOUT = 10.0  # seconds from a request's first byte to its last


class DeadlineSocketReader(io.RawIOBase):
    """Reads a socket under a deadline: idle until a request starts, then the request's."""

    def __init__(self, sock: socket.socket, idle_timeout: float, request_timeout: float) -> None:
        self.sock = sock
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.deadline = 0.0
        self.request_started = False
        self.expect_request()

    def expect_request(self) -> None:
        """The previous request is answered: wait at most ``idle_timeout`` for the next."""
        self.deadline = time.monotonic() + self.idle_timeout
        self.request_started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # io.RawIOBase types the buffer as WriteableBuffer
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the client was too slow")
        self.sock.settimeout(remaining)
        try:
            n = self.sock.recv_into(buffer)
        finally:
            self.sock.settimeout(self.request_timeout)  # what a send may take
        if n and not self.request_started:
            self.request_started = True
            self.deadline = time.monotonic() + self.request_timeout
        return n


class TimedRequestHandler(BaseHTTPRequestHandler):
    """Subclass it as ``BaseHTTPRequestHandler``; set the two timeouts as class attributes."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a client pool expects
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # headers and body leave in one send (flushed per request)
    idle_timeout = IDLE_TIMEOUT
    request_timeout = REQUEST_TIMEOUT

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain reader makefile() gave; ours replaces it
        self.reader = DeadlineSocketReader(
            self.connection, self.idle_timeout, self.request_timeout
        )
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self) -> None:
        self.reader.expect_request()
        super().handle_one_request()
        if not self.wfile.closed:
            try:
                self.wfile.flush()  # an error answer (send_error) returns before the flush
            except OSError:
                self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request (or per timed-out client) would drown the logs
