"""slow_close: when the source ends its stream, wait `delay` ms before passing the end on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from faults.proxy.toxics.base import HOUR_MS, Kind, LinkView, Piece, Toxic


class SlowCloseToxic(Toxic):
    type = "slow_close"
    defaults: ClassVar[dict[str, Any]] = {"delay": 0}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"delay": (0, HOUR_MS)}

    def pipe(self, piece: Piece, state: Any, link: LinkView) -> Iterable[Piece]:
        if piece.kind is Kind.EOF and self.attributes["delay"] > 0:
            piece.due += self.attributes["delay"] / 1000.0
        return (piece,)
