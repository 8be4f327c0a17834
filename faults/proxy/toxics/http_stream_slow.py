"""http_stream_slow: hold each unit (SSE event, chunk) of HTTP responses `delay` ms longer
than the one before it, from the `after_chunks`-th on: a server generating tokens
slowly. The first one hit waits `delay` after it arrived, so its time to first token
grows too when `after_chunks` is 0."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.proxy.http_framing import Part
from faults.proxy.toxics.base import HOUR_MS, LinkView, Piece
from faults.proxy.toxics.http_stream import HttpStreamToxic, StreamState


@dataclass
class _Paced(StreamState):
    gate: float = 0.0  # loop time before which the current unit may not go out


class HttpStreamSlowToxic(HttpStreamToxic):
    type = "http_stream_slow"
    defaults: ClassVar[dict[str, Any]] = {"delay": 0, "after_chunks": 0}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"delay": (0, HOUR_MS)}

    def new_state(self) -> _Paced:
        return _Paced()

    def act(self, part: Part, due: float, state: _Paced, link: LinkView) -> Iterable[Piece]:
        if self.hits(part):
            state.gate = max(due, state.gate) + self.attributes["delay"] / 1000.0
        return (Piece(part.data, max(due, state.gate)),)
