"""Input drift monitor: windowed PSI of request features against training data.

Each feature's training distribution is cut into deciles. The last ``window``
request rows are counted into those bins and compared with the Population
Stability Index; the drift score is the largest PSI over the features. Above
``threshold`` (0.2 is the usual "significant shift" line) with at least
``min_rows`` rows seen, the alert is on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

PSI_EPSILON = 1e-4


@dataclass
class DriftState:
    score: float
    alert: bool
    per_feature: dict[str, float]
    rows: int


class DriftMonitor:
    def __init__(
        self,
        reference: np.ndarray,
        names: tuple[str, ...],
        window: int = 500,
        threshold: float = 0.2,
        min_rows: int = 100,
        bins: int = 10,
    ) -> None:
        self.names = names
        self.window = window
        self.threshold = threshold
        self.min_rows = min_rows
        qs = np.linspace(0, 1, bins + 1)[1:-1]
        # Inner edges per feature; np.unique drops repeated edges of discrete features.
        self.edges = [np.unique(np.quantile(reference[:, j], qs)) for j in range(len(names))]
        self.expected = [self._share(self._bin(reference[:, j], j), j) for j in range(len(names))]
        self.recent: deque[np.ndarray] = deque()
        self.counts = [np.zeros(len(e) + 1) for e in self.edges]

    def _bin(self, column: np.ndarray, j: int) -> np.ndarray:
        return np.searchsorted(self.edges[j], column, side="right")

    def _share(self, binned: np.ndarray, j: int) -> np.ndarray:
        counts = np.bincount(binned, minlength=len(self.edges[j]) + 1).astype(float)
        return counts / max(counts.sum(), 1.0)

    def observe(self, features: np.ndarray) -> None:
        """Add request rows to the window (dropping the oldest beyond ``window``)."""
        rows = features[-self.window :]
        binned = np.column_stack([self._bin(rows[:, j], j) for j in range(len(self.names))])
        self._count(binned, +1)
        self.recent.extend(binned)
        excess = len(self.recent) - self.window
        if excess > 0:
            self._count(np.array([self.recent.popleft() for _ in range(excess)]), -1)

    def _count(self, binned: np.ndarray, sign: int) -> None:
        for j, counts in enumerate(self.counts):
            counts += sign * np.bincount(binned[:, j], minlength=len(counts))

    def state(self) -> DriftState:
        rows = len(self.recent)
        per_feature: dict[str, float] = {}
        for j, name in enumerate(self.names):
            actual = self.counts[j] / max(rows, 1)
            p = np.clip(actual, PSI_EPSILON, None)
            q = np.clip(self.expected[j], PSI_EPSILON, None)
            per_feature[name] = float(np.sum((p - q) * np.log(p / q))) if rows else 0.0
        score = max(per_feature.values()) if per_feature else 0.0
        return DriftState(
            score=score,
            alert=rows >= self.min_rows and score > self.threshold,
            per_feature=per_feature,
            rows=rows,
        )
