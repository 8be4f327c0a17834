"""http_stream_cut: close the connection when the unit after the first `after_chunks`
(SSE events, chunks) of an HTTP response arrives: the client has read exactly
`after_chunks` units and the body ends there, mid-stream."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from faults.proxy.http_framing import Part
from faults.proxy.toxics.base import Kind, LinkView, Piece
from faults.proxy.toxics.http_stream import HttpStreamToxic, StreamState


@dataclass
class _Cut(StreamState):
    cut: bool = False


class HttpStreamCutToxic(HttpStreamToxic):
    type = "http_stream_cut"

    def new_state(self) -> _Cut:
        return _Cut()

    def act(self, part: Part, due: float, state: _Cut, link: LinkView) -> Iterable[Piece]:
        if state.cut:
            return ()
        if self.hits(part):
            state.cut = True
            return (Piece(b"", due, Kind.CLOSE),)
        return (Piece(part.data, due),)

    def end(self, piece: Piece, state: _Cut) -> Iterable[Piece]:
        return () if state.cut else (piece,)
