"""latency: delay every chunk by `latency` ± `jitter` ms from its arrival."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from faults.proxy.toxics.base import HOUR_MS, Kind, LinkView, Piece, Toxic


class LatencyToxic(Toxic):
    type = "latency"
    defaults: ClassVar[dict[str, Any]] = {"latency": 0, "jitter": 0}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"latency": (0, HOUR_MS), "jitter": (0, HOUR_MS)}
    buffer_bytes = 32 * 1024 * 1024  # enough in flight that a delay does not cap throughput

    def pipe(self, piece: Piece, state: Any, link: LinkView) -> Iterable[Piece]:
        if piece.kind is Kind.DATA:
            delay_ms = self.attributes["latency"]
            jitter = self.attributes["jitter"]
            if jitter > 0:
                delay_ms += link.rng.uniform(-jitter, jitter)
            if delay_ms > 0:
                piece.due += delay_ms / 1000.0
        return (piece,)
