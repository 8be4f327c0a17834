"""http_delay: hold a fraction `rate` of HTTP requests for `delay` ms before the upstream
sees them, so their response headers arrive that much later (time to first byte).

Acts on the request direction (stream upstream) of an HTTP/1.x upstream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from faults.proxy.http_framing import RequestFramer
from faults.proxy.toxics.base import FRACTION, HOUR_MS, Kind, LinkView, Piece, Toxic


@dataclass
class _Requests:
    framer: RequestFramer = field(default_factory=RequestFramer)


class HttpDelayToxic(Toxic):
    type = "http_delay"
    defaults: ClassVar[dict[str, Any]] = {"delay": 0, "rate": 1.0}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"delay": (0, HOUR_MS), "rate": FRACTION}
    directions = ("upstream",)
    buffer_bytes = 4 * 1024 * 1024

    def new_state(self) -> _Requests:
        return _Requests()

    def pipe(self, piece: Piece, state: _Requests, link: LinkView) -> Iterable[Piece]:
        if piece.kind is not Kind.DATA:
            return (piece,)
        out: list[Piece] = []
        for seg in state.framer.feed(piece.data):
            due = piece.due
            if seg.first and link.rng.random() < self.attributes["rate"]:
                due += max(self.attributes["delay"], 0) / 1000.0
            out.append(Piece(seg.data, due))  # later bytes queue behind it: order is kept
        return out
