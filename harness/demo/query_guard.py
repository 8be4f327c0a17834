"""Stateful detection of query-based evasion: refuse a probe that lands among many
recent near-duplicate queries.

Black-box attacks such as HopSkipJump find a decision boundary by sending many queries
that differ from each other by tiny steps (binary searches, gradient estimates around
one point). Real transactions almost never come that close to each other, and an exact
repeat (a client sending the same row again) is not a probe. So a row with at least
`neighbours` earlier, non-identical queries within `radius` (L2, features scaled to
[0, 1] over the training range) among the last `history` queries is refused. This is
the idea of Chen, Carlini and Wagner's stateful detection (2019), kept to what numpy
does in microseconds; it keys on the queries, not on who sent them, so one attacker
cannot hide behind the legitimate load, but a patient attacker who spaces its probes
by more than `radius`, or spreads them over more than `history` queries, goes unseen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAME = 1e-9  # closer than this is the same row sent again, not a probe


class QueryRefused(Exception):
    """The request looks like boundary probing; the server answers 403."""


@dataclass
class QueryGuard:
    low: np.ndarray  # per feature, the training range used to scale
    high: np.ndarray
    radius: float = 0.02
    neighbours: int = 8
    history: int = 4000
    refused: int = 0  # rows refused so far (the /metrics counter reads the server's)
    _seen: np.ndarray = field(init=False)
    _filled: int = field(init=False, default=0)
    _next: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._span = np.where(self.high > self.low, self.high - self.low, 1.0).astype(np.float32)
        self._seen = np.zeros((self.history, len(self.low)), dtype=np.float32)

    @classmethod
    def from_training(cls, features: np.ndarray, **kw: float) -> QueryGuard:
        return cls(features.min(axis=0), features.max(axis=0), **kw)  # type: ignore[arg-type]  # **kw are the float margins of the constructor

    def check(self, features: np.ndarray) -> None:
        """Remember the rows; raise QueryRefused if any of them probes a crowded spot.

        Rows are taken in order, each against the history and the rows before it in
        the same request, so a batch of probes is caught as surely as a stream.
        """
        scaled = ((np.asarray(features, dtype=np.float32) - self.low) / self._span).reshape(len(features), -1)
        crowded = 0
        for row in scaled:
            seen = self._seen[: self._filled]
            d = np.sqrt(((seen - row) ** 2).sum(axis=1))
            crowded = max(crowded, int(((d > SAME) & (d <= self.radius)).sum()))
            self._seen[self._next] = row  # probes count against later ones, refused or not
            self._next = (self._next + 1) % self.history
            self._filled = min(self._filled + 1, self.history)
        if crowded >= self.neighbours:
            self.refused += len(features)
            raise QueryRefused(
                f"refused: {crowded} recent queries within {self.radius:g} of one of these rows "
                "(the boundary probing of a query-based evasion attack)"
            )
