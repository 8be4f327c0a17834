"""Open-loop pacing for an arrival-rate load (ArrivalRateShape).

Each user of the pool sends one request every users/rate seconds, and user n of the pool
sends its first one n/rate seconds after it starts: the pool's requests then arrive one
every 1/rate seconds, not `users` at once every period (a burst the size of the pool would
queue at the target and read as latency the rate itself never causes). When an answer
takes longer than users/rate, that user sends its next request at once and keeps its
period from there, so the pool cannot hold the rate: raise `users` (the runner warns when
a run's throughput stays under its rate).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from time import perf_counter
from typing import Any

import gevent
from locust import constant

from harness.engine.load.config import ArrivalRateShape, LoadConfig


class ArrivalPacing:
    def __init__(self, rate: float, users: int) -> None:
        self.rate = rate
        self.period = users / rate  # between two requests of one user
        self.users = users
        self._started = itertools.count()  # users started in this process

    def first_due(self) -> float:
        """When (perf_counter) the next user to start sends its first request: its slot in the period."""
        return perf_counter() + (next(self._started) % self.users) / self.rate

    def wait_time(self) -> Callable[[Any], float]:
        """The wait_time of every user of the pool: until one period after its last request was due."""
        period = self.period

        def wait(user: Any) -> float:
            now = perf_counter()
            user.paced_due = max(user.paced_due + period, now)  # late (a slow answer): go now, no catch-up burst
            return user.paced_due - now

        return wait


class PacedStart:
    """A user class's start: a user of an arrival-rate pool waits for its slot in the period."""

    pacing: ArrivalPacing | None = None
    paced_due = 0.0  # when (perf_counter) this user's last request was due

    def on_start(self) -> None:
        if self.pacing is not None:
            self.paced_due = self.pacing.first_due()
            gevent.sleep(max(0.0, self.paced_due - perf_counter()))


def pace(user_class: type[PacedStart], config: LoadConfig) -> None:
    """Set how `user_class` spaces its requests: an arrival rate's pacing, else think_time."""
    if isinstance(config.shape, ArrivalRateShape):
        user_class.pacing = ArrivalPacing(config.shape.rate, config.users)
        user_class.wait_time = user_class.pacing.wait_time()  # type: ignore[attr-defined]
    else:
        user_class.pacing = None
        user_class.wait_time = constant(config.think_time)  # type: ignore[attr-defined]
