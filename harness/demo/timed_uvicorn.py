"""uvicorn's HTTP/1.1 protocol, with timeouts for clients that are slow or send nothing.

uvicorn closes a keep-alive connection that is idle after an answer, but not one that
never sends a byte, nor one that trickles its headers or its body: each holds a
connection (and the app a task) for good. Here the same rules hold as in the stdlib
servers (``timed_http``): a connection may wait ``timeout_keep_alive`` (the idle timeout)
for its first byte too, and from a request's first byte its headers and body must arrive
within ``request_timeout``; then it gets a 408 and is closed.

uvicorn's answers need no help with Nagle: asyncio sets TCP_NODELAY on every socket.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from harness.demo.timed_http import REQUEST_TIMEOUT

TIMED_OUT_BODY = b"the request did not arrive within its timeout\n"
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(TIMED_OUT_BODY), TIMED_OUT_BODY)
)


class TimedH11Protocol(H11Protocol):
    """Pass as ``uvicorn.Config(http=...)``; subclass to set ``request_timeout``."""

    request_timeout = REQUEST_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's protocol types it as BaseTransport
        super().connection_made(transport)
        self.request_timer: asyncio.TimerHandle | None = None
        # uvicorn arms its idle timer only after an answer; arm it for the first request too
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        if self.request_timer is None and self.conn.their_state is h11.IDLE:
            self.request_timer = self.loop.call_later(self.request_timeout, self.request_timed_out)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
            self.cancel_request_timer()  # the whole request is in (or the connection is done)

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_request_timer()
        super().connection_lost(exc)

    def cancel_request_timer(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    def request_timed_out(self) -> None:
        self.request_timer = None
        if self.transport.is_closing():
            return
        if self.conn.our_state is h11.IDLE or self.conn.our_state is h11.SEND_RESPONSE:
            self.transport.write(TIMED_OUT)  # no answer has begun on this connection
        self.transport.close()  # the app, if it waits for the body, sees a disconnect
