"""Find request boundaries in a client's HTTP/1.x byte stream, and response parts and
units in a server's, keeping the bytes exact.

HTTP toxics act per request or per streamed unit, so they need to know where each
starts and ends without re-encoding anything. These framers only look at the start
line, the Content-Length / Transfer-Encoding (/ Content-Type) headers and chunk sizes;
anything they cannot follow (an upgrade, a head over 64 KiB, a malformed length)
switches them to pass-through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_MAX_HEAD = 64 * 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] [1-5][0-9][0-9][ \r]")
_STATUS_LINE_START = re.compile(rb"H(T(T(P(/(1(\.([01]( ([1-5]([0-9]([0-9])?)?)?)?)?)?)?)?)?)?)?")  # a cut-off one


@dataclass(slots=True)
class BodyFraming:
    """What a message head says about the body after it."""

    length: int | None  # Content-Length; None: absent
    chunked: bool
    upgrade: bool
    event_stream: bool  # Content-Type text/event-stream
    valid: bool = True  # False: a Content-Length that is not a number


def body_framing(head: bytes) -> BodyFraming:
    framing = BodyFraming(None, False, False, False)
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            framing.valid = value.isdigit()
            framing.length = int(value) if framing.valid else None
        elif name == b"transfer-encoding" and value.endswith(b"chunked"):
            framing.chunked = True
        elif name == b"upgrade":
            framing.upgrade = True
        elif name == b"content-type" and value.startswith(b"text/event-stream"):
            framing.event_stream = True
    return framing


def chunk_size(line: bytes) -> int | None:
    """The size a chunk-size line announces (extensions ignored); None if it is not one."""
    try:
        return int(line.split(b";")[0], 16)
    except ValueError:
        return None


class HeadBuffer:
    """A message head that may arrive over several reads, up to its blank line; bounded."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.overflow = False

    def clear(self) -> None:
        self._buf.clear()

    def begins(self, data: bytes, i: int, prefix: bytes) -> bool:
        """The head, with `data[i:]` after what it holds, can still begin with `prefix`."""
        start = bytes(self._buf[: len(prefix)]) + data[i : i + len(prefix)]
        return prefix.startswith(start[: len(prefix)])

    def take(self, data: bytes, i: int) -> tuple[bytes | None, int]:
        """The completed head (None: not complete yet) and where reading goes on."""
        seen = len(self._buf)
        self._buf += data[i:]
        end = self._buf.find(b"\r\n\r\n", max(seen - 3, 0))
        if end < 0:
            self.overflow = len(self._buf) > _MAX_HEAD
            return None, len(data)
        head = bytes(self._buf[: end + 4])
        self._buf.clear()
        return head, i + end + 4 - seen


class LineBuffer:
    """A line (chunk size, trailer) that may arrive over several reads; bounded like a head."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.overflow = False

    def take(self, data: bytes, i: int) -> tuple[bytes | None, int]:
        """The completed line, stripped (None: not complete yet), and where reading goes on."""
        nl = data.find(b"\n", i)
        if nl < 0:
            self._buf += data[i:]
            self.overflow = len(self._buf) > _MAX_HEAD
            return None, len(data)
        self._buf += data[i:nl]
        line = bytes(self._buf).strip()
        self._buf.clear()
        return line, nl + 1


@dataclass(slots=True)
class Segment:
    data: bytes
    request: int  # sequence number of the request these bytes belong to (-1: not HTTP)
    first: bool  # holds the first byte of that request
    last: bool  # completes that request


class _MessageFramer:
    """What both framers share: reading a head, then the body it announces."""

    _mode: str
    _head: HeadBuffer
    _lost = "opaque"  # the mode to go to when the stream cannot be followed

    def _start_body(self, head: bytes) -> None:
        raise NotImplementedError

    def _scan_head(self, data: bytes, i: int) -> int:
        head, end = self._head.take(data, i)
        if head is not None:
            self._start_body(head)
        elif self._head.overflow:
            self._mode = self._lost
        return end


class RequestFramer(_MessageFramer):
    def __init__(self) -> None:
        self.request = -1
        self._mode = "idle"  # idle | head | body | chunk_size | chunk_data | trailer | opaque
        self._head = HeadBuffer()
        self._line = LineBuffer()
        self._remaining = 0

    def feed(self, data: bytes) -> list[Segment]:
        out: list[Segment] = []
        i = 0
        first = False
        start = 0
        while i < len(data):
            mode = self._mode
            if mode == "opaque":
                i = len(data)
                break
            if mode == "idle":
                if i > start:
                    out.append(Segment(data[start:i], self.request, first, False))
                self.request += 1
                self._mode = "head"
                self._head.clear()
                start, first = i, True
                continue
            if mode == "head":
                i = self._scan_head(data, i)
            elif mode == "body":
                take = min(self._remaining, len(data) - i)
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._mode = "idle"
            elif mode == "chunk_data":
                take = min(self._remaining, len(data) - i)
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._mode = "chunk_size"
            else:  # chunk_size or trailer: line based
                i = self._scan_line(data, i)
            if self._mode == "idle":
                out.append(Segment(data[start:i], self.request, first, True))
                start, first = i, False
        if i > start:
            out.append(Segment(data[start:i], self.request, first, False))
        return out

    def _start_body(self, head: bytes) -> None:
        framing = body_framing(head)
        if not framing.valid or framing.upgrade or head.startswith(b"CONNECT "):
            self._mode = "opaque"
        elif framing.chunked:
            self._mode = "chunk_size"
        elif framing.length:
            self._mode = "body"
            self._remaining = framing.length
        else:
            self._mode = "idle"

    def _scan_line(self, data: bytes, i: int) -> int:
        line, end = self._line.take(data, i)
        if line is None:
            if self._line.overflow:
                self._mode = "opaque"
            return end
        if self._mode == "chunk_size":
            size = chunk_size(line)
            if size is None:
                self._mode = "opaque"
            elif size == 0:
                self._mode = "trailer"
            else:
                self._mode = "chunk_data"
                self._remaining = size + 2  # the data and its CRLF
        elif not line:  # trailer section ends with an empty line
            self._mode = "idle"
        return end


class PartKind(Enum):
    HEAD = "head"  # status line and headers
    FRAME = "frame"  # transfer-encoding bytes: chunk sizes, their CRLFs, the trailer
    BODY = "body"  # body content, as the client's HTTP library hands it up
    OPAQUE = "opaque"  # not followed (an upgrade; bytes skipped while finding the next response)


@dataclass(slots=True)
class Part:
    data: bytes
    kind: PartKind
    response: int  # sequence number of the response on this connection (-1: none yet)
    unit: int = -1  # BODY: index in its response of the unit it belongs to
    unit_start: bool = False  # BODY: holds the unit's first byte
    unit_end: bool = False  # BODY: completes the unit (may be empty: the body ended)


class ResponseFramer(_MessageFramer):
    """Split a server's HTTP/1.x byte stream into parts, and each body into units.

    A unit is what a streaming client reads as one step: an SSE event (up to its blank
    line) in a `text/event-stream` body, else a chunk of a chunked body, else the whole
    body. Parts are slices of the input, so the bytes a toxic passes on are exact. A
    HEAD request's reply (no body despite its Content-Length) is not told apart: the
    downstream direction never sees the request.

    A toxic added to a kept-alive connection may start reading mid-response, and a
    malformed response cannot be followed: the framer then passes bytes on as OPAQUE
    until the next status line (`HTTP/1.x NNN`), and follows the stream from there.
    """

    _lost = "resync"

    def __init__(self) -> None:
        self.response = -1
        # idle | head | body | until_close | chunk_size | chunk_data | chunk_crlf | trailer | resync | opaque
        self._mode = "idle"
        self._held = b""  # resync: last bytes that may begin a status line the next read completes
        self._head = HeadBuffer()
        self._line = LineBuffer()
        self._remaining = 0
        self._sse = False
        self._unit = 0
        self._unit_open = False
        self._line_has = False  # SSE: the current line has content
        self._event_has = False  # SSE: the current event has a non-blank line
        self._out: list[Part] = []

    def feed(self, data: bytes) -> list[Part]:
        self._out = out = []
        if self._held:
            data, self._held = self._held + data, b""
        i = 0
        while i < len(data):
            mode = self._mode
            if mode == "opaque":
                out.append(Part(data[i:], PartKind.OPAQUE, self.response))
                break
            if mode == "resync":
                i = self._resync(data, i)
                continue
            if mode == "idle":
                self.response += 1
                self._mode = "head"
                self._head.clear()
                continue
            if mode == "head" and not self._head.begins(data, i, b"HTTP/1."):
                self._mode = "resync"  # mid-response: not a status line
            elif mode == "head":
                i = self._scan_head(data, i)
            elif mode in ("body", "chunk_data"):
                take = min(self._remaining, len(data) - i)
                self._remaining -= take
                done = self._remaining == 0
                self._content(data[i:i + take], unit_done=done and (mode == "body" or not self._sse))
                i += take
                if done and mode == "body":
                    self._end_body()
                elif done:
                    self._mode, self._remaining = "chunk_crlf", 2
            elif mode == "until_close":
                self._content(data[i:], unit_done=False)
                i = len(data)
            elif mode == "chunk_crlf":
                take = min(self._remaining, len(data) - i)
                out.append(Part(data[i:i + take], PartKind.FRAME, self.response))
                self._remaining -= take
                i += take
                if self._remaining == 0:
                    self._mode = "chunk_size"
            else:  # chunk_size or trailer: line based
                i = self._scan_line(data, i)
        return out

    def _scan_head(self, data: bytes, i: int) -> int:
        end = super()._scan_head(data, i)
        self._out.append(Part(data[i:end], PartKind.HEAD, self.response))
        return end

    def _start_body(self, head: bytes) -> None:
        self._unit, self._unit_open, self._line_has, self._event_has = 0, False, False, False
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
            self._mode = "resync"
            return
        code = int(status[1])
        framing = body_framing(head)
        self._sse = framing.event_stream
        if code == 101:
            self._mode = "opaque"  # another protocol from here on
        elif not framing.valid:
            self._mode = "resync"
        elif code < 200 or code in (204, 304):
            self._mode = "idle"
        elif framing.chunked:
            self._mode = "chunk_size"
        elif framing.length is None:
            self._mode = "until_close"
        elif framing.length > 0:
            self._mode, self._remaining = "body", framing.length
        else:
            self._mode = "idle"

    def _scan_line(self, data: bytes, i: int) -> int:
        line, end = self._line.take(data, i)
        kind = PartKind.FRAME
        if line is None:
            if self._line.overflow:
                self._mode = "resync"
        elif self._mode == "chunk_size":
            size = chunk_size(line)
            if size is None:
                self._mode, kind = "resync", PartKind.OPAQUE
            elif size == 0:
                self._close_unit()  # the body ends here: an event left open ends with it
                self._mode = "trailer"
            else:
                self._mode, self._remaining = "chunk_data", size
        elif not line:  # the trailer section ends with an empty line
            self._mode = "idle"
        self._out.append(Part(data[i:end], kind, self.response))
        return end

    def _resync(self, data: bytes, i: int) -> int:
        """Pass bytes on as OPAQUE up to the next status line; the framer starts there.
        A last few bytes that may begin one wait for the next read (`flush` at the end)."""
        match = _STATUS_LINE.search(data, i)
        end = match.start() if match else len(data)
        if match is None:
            end -= next((k for k in range(min(12, end - i), 0, -1) if _STATUS_LINE_START.fullmatch(data, end - k)), 0)
            self._held = data[end:]
        else:
            self._mode = "idle"
        if end > i:
            self._out.append(Part(data[i:end], PartKind.OPAQUE, self.response))
        return end if match else len(data)

    def flush(self) -> list[Part]:
        """The stream ended: bytes held back while looking for a status line go out."""
        held, self._held = self._held, b""
        return [Part(held, PartKind.OPAQUE, self.response)] if held else []

    def _end_body(self) -> None:
        self._close_unit()
        self._mode = "idle"

    def _close_unit(self) -> None:
        if self._unit_open:
            self._out.append(Part(b"", PartKind.BODY, self.response, self._unit, False, True))
            self._unit += 1
            self._unit_open = False

    def _content(self, content: bytes, unit_done: bool) -> None:
        """Body bytes, cut where units end (SSE: a blank line; else `unit_done` at the end)."""
        ends = self._event_ends(content) if self._sse else []
        if unit_done and (not ends or ends[-1] != len(content)) and content:
            ends.append(len(content))
        start = 0
        for end in [*ends, len(content)]:
            if end <= start:
                continue
            last = end in ends
            self._out.append(Part(content[start:end], PartKind.BODY, self.response, self._unit,
                                  not self._unit_open, last))
            self._unit_open = not last
            if last:
                self._unit += 1
            start = end

    def _event_ends(self, content: bytes) -> list[int]:
        """Offsets just past each blank line that ends an SSE event in `content`."""
        ends = []
        pos = 0
        while True:
            nl = content.find(b"\n", pos)
            if nl < 0:
                if content[pos:].strip(b"\r"):
                    self._line_has = True
                return ends
            if self._line_has or content[pos:nl].strip(b"\r"):
                self._event_has = True
            elif self._event_has:
                ends.append(nl + 1)
                self._event_has = False
            self._line_has = False
            pos = nl + 1
