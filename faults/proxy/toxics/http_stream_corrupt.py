"""http_stream_corrupt: mangle unit number `after_chunks` (0-based: SSE event, chunk, or
the whole body) of each HTTP response so that it is no longer JSON, keeping its length,
so the HTTP framing (chunk sizes, Content-Length) stays valid.

The second half of each `data:` value of the event (of the whole unit when it has no
`data:` line) is overwritten with `~`: a JSON text can neither end in `~` nor leave a
string open, so no result of this is valid JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from faults.proxy.http_framing import Part, PartKind
from faults.proxy.toxics.base import LinkView, Piece
from faults.proxy.toxics.http_stream import HttpStreamToxic, StreamState

_DATA_VALUE = re.compile(rb"^data: ?(.*?)\r?$", re.MULTILINE)
_MAX_HELD = 1024 * 1024  # a longer unit is mangled in what was held, the rest passes


def mangled(content: bytes) -> bytes:
    """`content` of the same length, no longer JSON (see the module docstring)."""
    out = bytearray(content)
    spans = [m.span(1) for m in _DATA_VALUE.finditer(content) if m.end(1) > m.start(1)]
    for start, end in spans or [(0, len(content))]:
        middle = (start + end) // 2
        out[middle:end] = b"~" * (end - middle)
    return bytes(out)


@dataclass
class _Holding(StreamState):
    held: list[Part] | None = None  # the unit being held until its end, with its framing
    held_bytes: int = 0


class HttpStreamCorruptToxic(HttpStreamToxic):
    type = "http_stream_corrupt"

    def new_state(self) -> _Holding:
        return _Holding()

    def hits(self, part: Part) -> bool:
        return super().hits(part) and part.unit == self.attributes["after_chunks"]

    def act(self, part: Part, due: float, state: _Holding, link: LinkView) -> Iterable[Piece]:
        if state.held is None and not self.hits(part):
            return (Piece(part.data, due),)
        if state.held is None:
            state.held, state.held_bytes = [], 0
        state.held.append(part)
        state.held_bytes += len(part.data)
        if (part.kind is PartKind.BODY and part.unit_end) or state.held_bytes > _MAX_HELD:
            return self.release(state, due)
        return ()

    def release(self, state: _Holding, due: float) -> list[Piece]:
        """The held unit, mangled, in its original framing."""
        held, state.held = state.held or [], None
        body = [p for p in held if p.kind is PartKind.BODY]
        content = mangled(b"".join(p.data for p in body))
        for p in body:
            p.data, content = content[: len(p.data)], content[len(p.data):]
        return [Piece(p.data, due) for p in held]

    def end(self, piece: Piece, state: _Holding) -> Iterable[Piece]:
        return [*self.release(state, piece.due), piece]
