"""limit_data: pass at most `bytes` per connection and direction, then close.

The count lives in the per-link state, so it survives updates of the toxic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.proxy.toxics.base import Kind, LinkView, Piece, Toxic


@dataclass
class _Count:
    passed: int = 0
    closed: bool = False


class LimitDataToxic(Toxic):
    type = "limit_data"
    defaults: ClassVar[dict[str, Any]] = {"bytes": 0}

    def new_state(self) -> _Count:
        return _Count()

    def pipe(self, piece: Piece, state: _Count, link: LinkView) -> Iterable[Piece]:
        if state.closed:
            return ()
        if piece.kind is not Kind.DATA:
            return (piece,)
        left = max(self.attributes["bytes"] - state.passed, 0)
        out: list[Piece] = []
        if left > 0:
            data = piece.data[:left]
            state.passed += len(data)
            out.append(Piece(data, piece.due))
            left -= len(data)
        if left <= 0:
            state.closed = True
            out.append(Piece(b"", piece.due, Kind.CLOSE))
        return out
