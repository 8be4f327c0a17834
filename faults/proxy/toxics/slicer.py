"""slicer: cut chunks into pieces of about `average_size` ± `size_variation` bytes,
`delay` µs apart, to exercise a peer's handling of partial reads."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.proxy.toxics.base import HOUR_MS, Kind, LinkView, Piece, Toxic


def slice_sizes(total: int, average: int, variation: int, rng: random.Random) -> list[int]:
    """Sizes (each >= 1) that add up to `total`."""
    sizes: list[int] = []
    left = total
    while left > 0:
        size = average + (rng.randint(-variation, variation) if variation > 0 else 0)
        size = min(max(size, 1), left)
        sizes.append(size)
        left -= size
    return sizes


@dataclass
class _Pace:
    next_free: float = 0.0


class SlicerToxic(Toxic):
    type = "slicer"
    defaults: ClassVar[dict[str, Any]] = {"average_size": 0, "size_variation": 0, "delay": 0}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"delay": (0, HOUR_MS * 1000)}  # µs

    def new_state(self) -> _Pace:
        return _Pace()

    def pipe(self, piece: Piece, state: _Pace, link: LinkView) -> Iterable[Piece]:
        average = self.attributes["average_size"]
        if piece.kind is not Kind.DATA or average <= 0:
            return (piece,)
        gap = max(self.attributes["delay"], 0) / 1e6
        at = max(piece.due, state.next_free)
        out: list[Piece] = []
        offset = 0
        for size in slice_sizes(
            len(piece.data), average, self.attributes["size_variation"], link.rng
        ):
            out.append(Piece(piece.data[offset : offset + size], at))
            offset += size
            at += gap
        state.next_free = at
        return out
