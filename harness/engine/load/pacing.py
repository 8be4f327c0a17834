"""Open-loop pacing for an arrival-rate load (ArrivalRateShape).

Each user of the pool sends one request every users/rate seconds, user n of the pool
(counted across worker processes) at n/rate seconds into each period of the Unix clock:
the pool's requests then arrive one every 1/rate seconds, not `users` at once every period
(a burst the size of the pool would queue at the target and read as latency the rate
itself never causes). When an answer takes longer than users/rate, that user sends its next
request at once and keeps its period from there, so the pool cannot hold the rate: raise
`users` (the runner warns when a run's throughput stays under its rate).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust import constant

from harness.engine.load.config import ArrivalRateShape, LoadConfig


class ArrivalPacing:
    def __init__(self, rate: float, users: int, workers: int = 1) -> None:
        self.rate = rate
        self.period = users / rate  # between two requests of one user
        self.users = users
        self.workers = workers  # processes sharing the pool: slots interleave, worker w takes w, w + workers, ...
        self._started = itertools.count()  # users started in this process

    def first_due(self, worker: int = 0) -> float:
        """When (Unix time) the next user to start in worker `worker` sends its first request:
        the next instant of its slot in the period, on a grid the Unix clock gives every worker
        process alike (their users start tens of ms apart on a busy box)."""
        slot = (next(self._started) * self.workers + worker % self.workers) % self.users
        now = time.time()
        return now + (slot / self.rate - now) % self.period

    def wait_time(self) -> Callable[[Any], float]:
        """The wait_time of every user of the pool: until one period after its last request was due."""
        period = self.period

        def wait(user: Any) -> float:
            now = time.time()
            user.paced_due = max(user.paced_due + period, now)  # late (a slow answer): go now, no catch-up burst
            return user.paced_due - now

        return wait


class PacedStart:
    """A user class's start: a user of an arrival-rate pool waits for its slot in the period."""

    pacing: ArrivalPacing | None = None
    paced_due = 0.0  # when (Unix time) this user's last request was due

    def on_start(self) -> None:
        if self.pacing is not None:
            self.paced_due = self.pacing.first_due(self.environment.runner.worker_index)  # type: ignore[attr-defined]  # a Locust User's
            gevent.sleep(max(0.0, self.paced_due - time.time()))


def pace(user_class: type[PacedStart], config: LoadConfig) -> None:
    """Set how `user_class` spaces its requests: an arrival rate's pacing, else think_time."""
    if isinstance(config.shape, ArrivalRateShape):
        workers = max(config.processes, config.expect_workers, 1)
        user_class.pacing = ArrivalPacing(config.shape.rate, config.users, workers)
        user_class.wait_time = user_class.pacing.wait_time()  # type: ignore[attr-defined]
    else:
        user_class.pacing = None
        user_class.wait_time = constant(config.think_time)  # type: ignore[attr-defined]
