"""bandwidth: limit a link to `rate` KB/s (1 KB = 1000 bytes); rate <= 0 is unlimited."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.proxy.toxics.base import Kind, LinkView, Piece, Toxic

_SLICE = 0.1  # large chunks go out in pieces every 100 ms instead of one late burst


@dataclass
class _Pace:
    next_free: float = 0.0  # when the link has finished "sending" what it already passed


class BandwidthToxic(Toxic):
    type = "bandwidth"
    defaults: ClassVar[dict[str, Any]] = {"rate": 0}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"rate": (0, 10**9)}  # KB/s; 0 = unlimited

    def new_state(self) -> _Pace:
        return _Pace()

    def pipe(self, piece: Piece, state: _Pace, link: LinkView) -> Iterable[Piece]:
        rate = self.attributes["rate"]
        if piece.kind is not Kind.DATA or rate <= 0:
            return (piece,)
        bytes_per_second = rate * 1000
        step = int(bytes_per_second * _SLICE)
        at = max(piece.due, state.next_free)
        data = piece.data
        out: list[Piece] = []
        while len(data) > step:
            at += _SLICE
            out.append(Piece(data[:step], at))
            data = data[step:]
        at += len(data) / bytes_per_second
        out.append(Piece(data, at))
        state.next_free = at
        return out
