"""slicer: cut chunks into pieces of at most about `average_size` bytes (halving, the cut
moved by up to `size_variation`), `delay` µs apart, to exercise a peer's handling of
partial reads. Sizes and count match Toxiproxy's for the same attributes."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.proxy.toxics.base import HOUR_MS, Kind, LinkView, Piece, Toxic


def slice_sizes(total: int, average: int, variation: int, rng: random.Random) -> list[int]:
    """Sizes (each >= 1) that add up to `total`, cut as Toxiproxy cuts: halve the chunk
    (the cut moved by up to ±variation) until every piece is at most average + variation
    bytes, so without variation pieces land between average/2 and average (200 B at 10 →
    32 pieces of 6–7 B)."""
    if total - average <= variation or total <= 1:
        return [total] if total > 0 else []
    mid = total // 2
    if variation > 0:
        mid += rng.randrange(2 * variation) - variation
    mid = min(max(mid, 1), total - 1)  # both halves keep at least one byte
    return slice_sizes(mid, average, variation, rng) + slice_sizes(total - mid, average, variation, rng)


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
