"""A proxied connection: the client's socket, the upstream's socket, and a link each way."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from faults.proxy.link import Link

if TYPE_CHECKING:
    from faults.proxy.proxy import Proxy

_LINGER_ZERO = struct.pack("ii", 1, 0)  # close() then sends RST instead of FIN


class Side(asyncio.Protocol):
    """asyncio protocol for one socket; it feeds the link reading from it and
    tells the link writing to it when to hold back."""

    def __init__(self, on_made: Callable[[Side], None] | None = None) -> None:
        self._on_made = on_made
        self.transport: asyncio.Transport | None = None
        self.conn: Connection | None = None
        self.reading: Link | None = None  # the link whose source is this socket
        self.writing: Link | None = None  # the link whose destination is this socket
        self.lost = False
        self._pauses: set[str] = set()
        # what arrived before the links existed: a server that speaks first (a greeting, or
        # data and a close at once) is read as soon as it connects, and its bytes must wait
        self._early: list[bytes] = []
        self._early_eof = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # asyncio hands a BaseTransport; a TCP server's is a Transport
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        if self.reading is not None:
            self.reading.feed(data)
        else:
            self._early.append(data)
            self.pause("connecting")  # hold one chunk until the links exist

    def eof_received(self) -> bool:
        if self.reading is not None:
            self.reading.feed_eof()
        else:
            self._early_eof = True
        return True  # keep the write half open until the other direction ends

    def pause_writing(self) -> None:
        if self.writing is not None:
            self.writing.set_dest_paused(True)

    def resume_writing(self) -> None:
        if self.writing is not None:
            self.writing.set_dest_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.conn is not None:
            self.conn.side_lost(self)

    # used by links and the connection
    def release_early(self) -> None:
        """The links exist now: pass on what was read before them, then read on.
        (Reading is not paused from connection_made: under uvloop it then may never resume.)"""
        assert self.reading is not None
        early, self._early = self._early, []
        for chunk in early:
            self.reading.feed(chunk)
        if self._early_eof:
            self.reading.feed_eof()
        self.resume("connecting")

    def write(self, data: bytes) -> None:
        if not self.lost and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def write_eof(self) -> None:
        if self.lost or self.transport is None or self.transport.is_closing():
            return
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        try:
            self.transport.write_eof()
        except OSError:  # the peer went away (ENOTCONN) before its loss was reported
            self.transport.close()

    def pause(self, reason: str) -> None:
        if not self._pauses and self.transport is not None and not self.lost:
            self.transport.pause_reading()
        self._pauses.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and self.transport is not None and not self.lost:
            self.transport.resume_reading()

    def close(self, linger_zero: bool = False) -> None:
        if self.transport is None:
            return
        if linger_zero:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                except OSError:
                    pass
            self.transport.abort()
        else:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Connection:
    def __init__(self, proxy: Proxy, client: Side, seq: int) -> None:
        self.proxy = proxy
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.upstream: Side | None = None
        self.seq = seq
        self.links: dict[str, Link] = {}
        self.closed = False
        self._connect_task: asyncio.Task[None] | None = None
        client.conn = self

    def start(self) -> None:
        self._connect_task = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        host, port = self.proxy.upstream_address()
        try:
            async with asyncio.timeout(30):  # no extra task per connection, as wait_for made
                _, upstream = await self.loop.create_connection(Side, host, port)
        except (TimeoutError, OSError, ValueError):
            self.close()  # like Toxiproxy: accept, then close when the upstream is unreachable
            return
        assert isinstance(upstream, Side)
        if self.closed or self.client.lost:
            upstream.abort()
            self.close()
            return
        upstream.conn = self
        self.upstream = upstream
        toxics = self.proxy.toxics.chains
        stats = self.proxy.stats
        self.links["upstream"] = Link(
            self,
            "upstream",
            self.client,
            upstream,
            self.proxy.link_rng(self.seq, "upstream"),
            toxics["upstream"],
            stats["upstream"],
        )
        self.links["downstream"] = Link(
            self,
            "downstream",
            upstream,
            self.client,
            self.proxy.link_rng(self.seq, "downstream"),
            toxics["downstream"],
            stats["downstream"],
        )
        self.client.reading = upstream.writing = self.links["upstream"]
        upstream.reading = self.client.writing = self.links["downstream"]
        self.client.release_early()
        upstream.release_early()

    def side_lost(self, side: Side) -> None:
        """A socket went away: pass on the end of what it sent, stop writing to it."""
        if self.closed:
            return
        if side.reading is None:  # still connecting
            self.close()
            return
        side.reading.feed_eof()
        if side.writing is not None:
            side.writing.abandon()

    def link_finished(self) -> None:
        if all(link.finished for link in self.links.values()):
            self.close()

    def _shutdown(self, how: str) -> None:
        if self.closed:
            return
        self.closed = True
        for link in self.links.values():
            link.stop()
        for side in (self.client, self.upstream):
            if side is None:
                continue
            if how == "reset":
                side.close(linger_zero=True)
            elif how == "abort":
                side.abort()
            else:
                side.close()
        task = self._connect_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self.proxy.connection_closed(self)

    def close(self) -> None:
        """Close both sockets gracefully (what was written still goes out, then FIN)."""
        self._shutdown("close")

    def abort(self) -> None:
        """Close both sockets now, dropping unsent data (proxy disabled or deleted)."""
        self._shutdown("abort")

    def reset(self) -> None:
        """Close both sockets with a TCP RST, so each peer sees ECONNRESET."""
        self._shutdown("reset")
