"""The resilience patterns, each small and independent of HTTP.

``CircuitBreaker`` (closed → open → half-open), ``TTLCache`` and
``backoff_delay`` (exponential backoff with full jitter). The feature client
composes them; the server switches each on or off.
"""

from __future__ import annotations

import enum
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BreakerState(enum.IntEnum):
    """Values match the ``demo_circuit_breaker_state`` gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Stops calling a failing dependency, then probes it with one trial call.

    ``failure_threshold`` consecutive failures open the breaker; after
    ``reset_timeout`` seconds it half-opens and lets exactly one call through.
    That call's success closes it, its failure opens it again.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.clock = clock
        self.on_change = on_change
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.trial_in_flight = False

    def _set(self, state: BreakerState) -> None:
        if state != self.state:
            self.state = state
            if self.on_change:
                self.on_change(state)

    def allow(self) -> bool:
        """May a call go out now? (In half-open, only the one trial call may.)"""
        if self.state == BreakerState.OPEN:
            if self.clock() - self.opened_at < self.reset_timeout:
                return False
            self._set(BreakerState.HALF_OPEN)
            self.trial_in_flight = False
        if self.state == BreakerState.HALF_OPEN:
            if self.trial_in_flight:
                return False
            self.trial_in_flight = True
        return True

    def abandon(self) -> None:
        """The call was cancelled before it had a result: free the half-open trial slot."""
        self.trial_in_flight = False

    def record_success(self) -> None:
        self.failures = 0
        self.trial_in_flight = False
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self.failures += 1
        if self.state == BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.trial_in_flight = False
            self.opened_at = self.clock()
            self._set(BreakerState.OPEN)


class TTLCache(Generic[K, V]):
    """A bounded map whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(
        self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        item = self.entries.get(key)
        if item is None:
            return None
        expires, value = item
        if self.clock() >= expires:
            del self.entries[key]
            return None
        return value

    def expires_in(self, key: K) -> float | None:
        """Seconds until the entry expires (None if there is none)."""
        item = self.entries.get(key)
        return None if item is None else item[0] - self.clock()

    def put(self, key: K, value: V) -> None:
        self.entries[key] = (self.clock() + self.ttl, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base·2^attempt))."""
    return rng.uniform(0.0, min(cap, base * (2**attempt)))
