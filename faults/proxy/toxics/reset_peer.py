"""reset_peer: on the first chunk, wait `timeout` ms, then reset the connection (TCP RST)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.proxy.toxics.base import HOUR_MS, Kind, LinkView, Piece, Toxic


@dataclass
class _Triggered:
    triggered: bool = False


class ResetPeerToxic(Toxic):
    type = "reset_peer"
    defaults: ClassVar[dict[str, Any]] = {"timeout": 0}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"timeout": (0, HOUR_MS)}

    def new_state(self) -> _Triggered:
        return _Triggered()

    def pipe(self, piece: Piece, state: _Triggered, link: LinkView) -> Iterable[Piece]:
        if state.triggered:
            return ()
        state.triggered = True
        return (Piece(b"", piece.due + self.attributes["timeout"] / 1000.0, Kind.RESET),)
