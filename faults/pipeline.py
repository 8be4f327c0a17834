"""Pipeline faults: duplicated, replayed and late events on the stream the harness ingests.

Each acts on the events of a scenario's `ingest:` stream while it is active (README,
"Pipeline faults"); all draws come from a generator seeded by the scenario's seed and the
fault's name, so a rerun sends the same events the same way.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from harness.core.attack import Rate
from harness.core.fault import FaultParams
from harness.core.pipeline_fault import Event, PipelineFault, StreamAction
from harness.core.units import Duration, Percent

MAX_REPLAY_RATE = 1000.0  # as ingest.rate: the stream stays bounded whatever a scenario says


class DuplicateParams(FaultParams):
    share: Percent = Field(0.3, description="share of new events delivered twice, 0..1 or a percentage")
    gap: Duration = Field(0.0, description="the second delivery this long after the first (0: in the same request)")


class ShareAction(StreamAction):
    """Acts on each new event with probability `share`; `change` says how."""

    def __init__(self, share: float) -> None:
        super().__init__()
        self.share = share

    def deliveries(self, event: Event, times: list[float], rng: np.random.Generator) -> list[float]:
        self.offered += 1
        self.expected += self.share
        if rng.random() >= self.share:
            return times
        self.acted += 1
        return self.change(times)

    @abstractmethod
    def change(self, times: list[float]) -> list[float]:
        """The delivery instants of a chosen event."""


class DuplicateAction(ShareAction):
    """A producer's retry after a lost acknowledgement: the same event, delivered again."""

    def __init__(self, params: DuplicateParams) -> None:
        super().__init__(params.share)
        self.gap = params.gap

    def change(self, times: list[float]) -> list[float]:
        return [*times, times[-1] + self.gap]


class DataDuplicate(PipelineFault):
    type: ClassVar[str] = "data.duplicate"
    Params = DuplicateParams
    metric_names: ClassVar[tuple[str, ...]] = ("duplicates_sent",)

    @classmethod
    def action(cls, params: Any, started: float) -> StreamAction:
        return DuplicateAction(params)


class ReplayParams(FaultParams):
    rate: Rate = Field(description="re-sent events per second, e.g. 20/s")
    window: Duration = Field(10.0, description="replay the events made in this span before the fault started")

    @field_validator("rate")
    @classmethod
    def _given(cls, value: float | None) -> float:
        if value is None or value > MAX_REPLAY_RATE:
            raise ValueError(f"rate must be re-sent events per second up to {MAX_REPLAY_RATE:g}/s, e.g. 20/s")
        return value

    @field_validator("window")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("window must be more than 0s: the span of past events to replay")
        return value


class ReplayAction(StreamAction):
    """A consumer rewound to an old offset: a window of events already ingested, delivered
    again out of order (a shuffled pass over the window, then another), at a rate."""

    def __init__(self, params: ReplayParams, started: float) -> None:
        super().__init__()
        self.params = params
        self.started = started
        self.queue: list[Event] = []
        self.window: list[Event] | None = None  # fixed at the first call: the past does not change

    def resends(self, now: float, history: Sequence[Event], rng: np.random.Generator) -> list[Event]:
        rate = self.params.rate or 0.0
        self.expected = max(0.0, now - self.started) * rate
        if self.window is None:
            self.window = [e for e in history if self.started - self.params.window <= e.event_time < self.started]
        window = self.window
        self.offered = len(window)
        due = int(self.expected) - self.acted
        out: list[Event] = []
        while due > 0 and window:
            if not self.queue:
                self.queue = [window[i] for i in rng.permutation(len(window))]
            out.append(self.queue.pop())
            due -= 1
        self.acted += len(out)
        return out


class DataReplay(PipelineFault):
    type: ClassVar[str] = "data.replay"
    Params = ReplayParams
    metric_names: ClassVar[tuple[str, ...]] = ("replays_sent",)

    @classmethod
    def action(cls, params: Any, started: float) -> StreamAction:
        return ReplayAction(params, started)


class LateParams(FaultParams):
    share: Percent = Field(0.5, description="share of new events held back, 0..1 or a percentage")
    delay: Duration = Field(description="how long they are held back; their event time stays when they were made")

    @field_validator("delay")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("delay must be more than 0s, e.g. 5s (past the target's allowed lateness)")
        return value


class LateAction(ShareAction):
    """A partition that stalls, a phone offline: events that arrive well after they happened."""

    def __init__(self, params: LateParams) -> None:
        super().__init__(params.share)
        self.delay = params.delay

    def change(self, times: list[float]) -> list[float]:
        return [t + self.delay for t in times]


class DataLate(PipelineFault):
    type: ClassVar[str] = "data.late"
    Params = LateParams
    metric_names: ClassVar[tuple[str, ...]] = ("late_sent",)

    @classmethod
    def action(cls, params: Any, started: float) -> StreamAction:
        return LateAction(params)
