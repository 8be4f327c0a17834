"""Zero-copy relay for a link no toxic acts on: splice(2) source socket → pipe → destination.

While a link has no toxics and nothing pending, its bytes need not pass through Python:
the kernel moves them from one socket to the other through a pipe, and the event loop
only wakes to say "readable" or "writable". A link starts splicing once it has relayed
`ENTER_AFTER` bytes through Python with nothing held back (a bulk transfer; short
exchanges never pay for the pipe), and stops when a toxic is added or the connection
ends. On stopping, what sits in the pipe is read back and written out through the
socket's transport before anything else, so no byte is lost or reordered.

The splicer reads and writes through duplicates of the sockets' descriptors, so the
asyncio transports stay the sockets' owners (closing, half-closing, resets) and the
source transport is only paused meanwhile.
"""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faults.proxy.link import Link

AVAILABLE = hasattr(os, "splice")  # Linux, Python 3.10+
ENTER_AFTER = 1 << 20  # bytes relayed in a row through Python before a link splices
PIPE_SIZE = 1 << 20  # asked of the kernel (fs.pipe-max-size allows 1 MiB unprivileged)
ROUNDS = 4  # splice calls per wake-up at most (about 1 ms), so the loop answers the API and other links
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


class Splicer:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.loop = link.loop
        source = link.source.transport.get_extra_info("socket")  # type: ignore[union-attr]
        dest = link.dest.transport.get_extra_info("socket")  # type: ignore[union-attr]
        self.src = os.dup(source.fileno())
        self.dst = os.dup(dest.fileno())
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:  # a bigger pipe: fewer wake-ups per megabyte
            self.capacity = fcntl.fcntl(self.pipe_w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            self.capacity = fcntl.fcntl(self.pipe_w, fcntl.F_GETPIPE_SZ)
        self.in_pipe = 0  # bytes read from the source, not yet written to the destination
        self.eof = False  # the source sent its end of stream
        self.open = True
        self._reading = self._writing = False
        link.source.pause("splice")
        self._read_on()

    def _read_on(self) -> None:
        if not self._reading:
            self.loop.add_reader(self.src, self._readable)
            self._reading = True

    def _read_off(self) -> None:
        if self._reading:
            self.loop.remove_reader(self.src)
            self._reading = False

    def _readable(self) -> None:
        for _ in range(ROUNDS):
            try:
                n = os.splice(self.src, self.pipe_w, self.capacity - self.in_pipe, flags=_FLAGS)
            except BlockingIOError:
                return
            except OSError:  # the source reset: its transport reports the loss
                self._fail(self.link.source)
                return
            if n == 0:
                self.eof = True
                self._read_off()
            else:
                self.in_pipe += n
                self.link.stats.bytes_received += n
            if not self._push() or self.eof:
                return

    def _push(self) -> bool:
        """Move what the pipe holds to the destination; False when it pushes back (the
        splicer then waits for it) or the splicing ended."""
        while self.in_pipe:
            try:
                n = os.splice(self.pipe_r, self.dst, self.in_pipe, flags=_FLAGS)
            except BlockingIOError:
                self._read_off()  # the destination pushes back: so does the source
                if not self._writing:
                    self.loop.add_writer(self.dst, self._writable)
                    self._writing = True
                return False
            except OSError:  # the destination is gone: its transport reports the loss
                self._fail(self.link.dest)
                return False
            self.in_pipe -= n
            self.link.stats.bytes_sent += n
        if self.eof:
            self.link.unsplice()
            self.link.feed_eof()  # the source's end of stream, read here, goes on
            return False
        self._read_on()
        return True

    def _writable(self) -> None:
        self.loop.remove_writer(self.dst)
        self._writing = False
        self._push()

    def _fail(self, side: object) -> None:
        self.link.unsplice()
        transport = getattr(side, "transport", None)
        if transport is not None:
            transport.abort()  # connection_lost follows, as for any socket error

    def stop(self) -> bytes:
        """Stop splicing; returns what the pipe still held (the link writes it out first)."""
        if not self.open:
            return b""
        self.open = False
        self._read_off()
        if self._writing:
            self.loop.remove_writer(self.dst)
            self._writing = False
        held = bytearray()
        while len(held) < self.in_pipe:
            try:
                data = os.read(self.pipe_r, self.in_pipe - len(held))
            except BlockingIOError:
                break
            if not data:
                break
            held += data
        for fd in (self.src, self.dst, self.pipe_r, self.pipe_w):
            os.close(fd)
        self.link.source.resume("splice")
        return bytes(held)
