"""http_stream_stall: after `after_chunks` units (SSE events, chunks) of each HTTP
response, hold the rest of that response for `stall` ms, then let it go on at its own
pace: one gap in the token stream grows by `stall`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.proxy.http_framing import Part
from faults.proxy.toxics.base import HOUR_MS, LinkView, Piece
from faults.proxy.toxics.http_stream import HttpStreamToxic, StreamState


@dataclass
class _Held(StreamState):
    response: int = -1  # the response the shift belongs to
    shift: float = 0.0  # seconds added to every later part of that response


class HttpStreamStallToxic(HttpStreamToxic):
    type = "http_stream_stall"
    defaults: ClassVar[dict[str, Any]] = {"stall": 0, "after_chunks": 0}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"stall": (0, HOUR_MS)}

    def new_state(self) -> _Held:
        return _Held()

    def act(self, part: Part, due: float, state: _Held, link: LinkView) -> Iterable[Piece]:
        if part.response != state.response:
            state.response, state.shift = part.response, 0.0
        if self.hits(part) and state.shift == 0.0:
            state.shift = self.attributes["stall"] / 1000.0
        return (Piece(part.data, due + state.shift),)
