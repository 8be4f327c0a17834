"""Automated canary analysis: judge a canary against the stable version, interval by interval.

Each interval compares the canary with the stable version on what the live traffic saw
(error rate, p95 latency of each version's requests) and on labelled shadow traffic: a
fixed holdout batch the server scores through both versions itself, so accuracy is
judged without waiting for labels from clients. A canary worse on any of them for
`fail_after` intervals in a row is rolled back; one healthy for `promote_after` seconds
is promoted. Fragile mode has no analysis: it promotes blindly after the same bake time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.demo.data import Samples
from harness.demo.versions import ServedVersion


@dataclass
class LiveCounts:
    """One version's live requests in the current interval."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def p95(self) -> float | None:
        return float(np.percentile(self.latencies, 95)) if self.latencies else None


@dataclass(frozen=True)
class Thresholds:
    max_accuracy_drop: float = 0.05  # shadow accuracy below the stable's by more: bad
    max_error_increase: float = 0.05  # error rate above the stable's by more: bad
    latency_factor: float = 2.0  # p95 above factor x stable + slack: bad
    latency_slack: float = 0.02  # seconds
    min_requests: int = 5  # fewer live canary requests in an interval: live figures not judged


class LiveTraffic:
    """Live requests by version, handed over once per interval (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, LiveCounts] = {}

    def observe(self, version: str, seconds: float, ok: bool) -> None:
        with self._lock:
            c = self._counts.setdefault(version, LiveCounts())
            c.requests += 1
            if ok:
                c.latencies.append(seconds)
            else:
                c.errors += 1

    def take(self) -> dict[str, LiveCounts]:
        with self._lock:
            counts, self._counts = self._counts, {}
            return counts


def shadow_accuracy(version: ServedVersion, shadow: Samples, entity_features: np.ndarray) -> float:
    """Accuracy of `version` on the labelled shadow batch; rows it crashes on count as wrong."""
    probabilities = version.degraded(version.models.predict_main(shadow.features, entity_features))
    right = probabilities.argmax(axis=1) == shadow.label
    return float(np.mean(right & ~version.crashes(shadow.entity_id)))


def judge(canary: LiveCounts, stable: LiveCounts, canary_acc: float, stable_acc: float,
          t: Thresholds) -> list[str]:
    """Why the canary is worse than the stable version this interval (empty: healthy)."""
    why = []
    if canary_acc < stable_acc - t.max_accuracy_drop:
        why.append(f"shadow accuracy {canary_acc:.3f} vs stable {stable_acc:.3f}")
    if canary.requests >= t.min_requests:
        c_err = canary.errors / canary.requests
        s_err = stable.errors / stable.requests if stable.requests else 0.0
        if c_err > s_err + t.max_error_increase:
            why.append(f"error rate {c_err:.1%} vs stable {s_err:.1%}")
        c_p95, s_p95 = canary.p95(), stable.p95()
        if c_p95 is not None and s_p95 is not None and c_p95 > t.latency_factor * s_p95 + t.latency_slack:
            why.append(f"p95 latency {c_p95 * 1000:.0f} ms vs stable {s_p95 * 1000:.0f} ms")
    return why


@dataclass
class CanaryAnalysis:
    """Watches one canary until it is promoted or rolled back (or gone)."""

    canary: ServedVersion
    stable: Callable[[], ServedVersion]
    current_canary: Callable[[], ServedVersion | None]
    live: LiveTraffic
    shadow: Samples
    shadow_entities: np.ndarray
    rollback: Callable[[str], None]  # with the reason
    promote: Callable[[], None]
    interval: float = 1.0
    fail_after: int = 2
    promote_after: float = 10.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    log: list[dict[str, object]] = field(default_factory=list)

    async def run(self) -> None:
        started, failing = time.monotonic(), 0
        self.live.take()  # judge only what this canary's intervals saw
        while self.current_canary() is self.canary:
            await asyncio.sleep(self.interval)
            if self.current_canary() is not self.canary:
                return
            stable = self.stable()
            counts = self.live.take()
            canary_acc, stable_acc = await asyncio.to_thread(self._accuracies, stable)
            why = judge(counts.get(self.canary.label, LiveCounts()), counts.get(stable.label, LiveCounts()),
                        canary_acc, stable_acc, self.thresholds)
            failing = failing + 1 if why else 0
            self.log.append({"t": time.time(), "canary": self.canary.label, "stable": stable.label,
                             "shadow_accuracy": {"canary": canary_acc, "stable": stable_acc},
                             "worse": why})
            if failing >= self.fail_after:
                self.rollback("; ".join(why))
                return
            if not why and time.monotonic() - started >= self.promote_after:
                self.promote()
                return

    def _accuracies(self, stable: ServedVersion) -> tuple[float, float]:
        return (shadow_accuracy(self.canary, self.shadow, self.shadow_entities),
                shadow_accuracy(stable, self.shadow, self.shadow_entities))
