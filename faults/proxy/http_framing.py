"""Find request boundaries in a client's HTTP/1.x byte stream, keeping the bytes exact.

HTTP toxics act per request, so they need to know where each request starts and ends
without re-encoding anything. This framer only looks at the request line, the
Content-Length / Transfer-Encoding headers and chunk sizes; anything it cannot follow
(an upgrade, a head over 64 KiB, a malformed length) switches it to pass-through.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_HEAD = 64 * 1024


@dataclass(slots=True)
class Segment:
    data: bytes
    request: int  # sequence number of the request these bytes belong to (-1: not HTTP)
    first: bool  # holds the first byte of that request
    last: bool  # completes that request


class RequestFramer:
    def __init__(self) -> None:
        self.request = -1
        self._mode = "idle"  # idle | head | body | chunk_size | chunk_data | trailer | opaque
        self._head = bytearray()
        self._line = bytearray()
        self._remaining = 0
        self._upgrade = False

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

    def _scan_head(self, data: bytes, i: int) -> int:
        seen = len(self._head)
        self._head += data[i:]
        end = self._head.find(b"\r\n\r\n", max(seen - 3, 0))
        if end < 0:
            if len(self._head) > _MAX_HEAD:
                self._mode = "opaque"
            return len(data)
        consumed = end + 4 - seen
        self._start_body(bytes(self._head[: end + 4]))
        return i + consumed

    def _start_body(self, head: bytes) -> None:
        length = 0
        chunked = False
        upgrade = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    self._mode = "opaque"
                    return
            elif name == b"transfer-encoding" and value.lower().endswith(b"chunked"):
                chunked = True
            elif name == b"upgrade":
                upgrade = True
        if upgrade or head.startswith(b"CONNECT "):
            self._mode = "opaque"
        elif chunked:
            self._mode = "chunk_size"
            self._line.clear()
        elif length > 0:
            self._mode = "body"
            self._remaining = length
        else:
            self._mode = "idle"

    def _scan_line(self, data: bytes, i: int) -> int:
        nl = data.find(b"\n", i)
        if nl < 0:
            self._line += data[i:]
            if len(self._line) > _MAX_HEAD:
                self._mode = "opaque"
            return len(data)
        self._line += data[i:nl]
        line = bytes(self._line).strip()
        self._line.clear()
        if self._mode == "chunk_size":
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                self._mode = "opaque"
                return nl + 1
            if size == 0:
                self._mode = "trailer"
            else:
                self._mode = "chunk_data"
                self._remaining = size + 2  # the data and its CRLF
        elif not line:  # trailer section ends with an empty line
            self._mode = "idle"
        return nl + 1
