"""WindowRecorder: buckets request samples into windows and hands out partial records.

Each sample goes to the window its request started in (index = floor(start / size)).
`drain()` returns a record for each window that got samples since the last drain and
forgets them: records are deltas, and the runner adds records with the same index, so
late completions and several processes need no special case. No Locust import here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from harness.core.protocols import Decoded, same_prediction
from harness.core.windows import Window


class WindowRecorder:
    def __init__(self, size: float) -> None:
        self.size = size
        self.requests = 0  # everything recorded, drained or not (a process's own total)
        self._open: dict[int, Window] = {}

    def window_for(self, start_time: float) -> Window:
        index = math.floor(start_time / self.size)
        w = self._open.get(index)
        if w is None:
            w = self._open[index] = Window(index=index, size=self.size)
        return w

    def record(
        self,
        start_time: float,
        latency_ms: float,
        failure: str | None = None,
        decoded: Decoded | None = None,
        labels: Sequence[Any] | None = None,
    ) -> None:
        w = self.window_for(start_time)
        w.requests += 1
        self.requests += 1
        if failure is not None:
            w.failures[failure] = w.failures.get(failure, 0) + 1
            return
        us = max(1, round(latency_ms * 1000))
        w.latency.record_value(us)
        w.latency_sum_us += us
        if decoded is None:
            return
        if decoded.fallback is not None:  # None: the response did not say
            w.fallback_flagged += 1
            w.fallbacks += decoded.fallback
        if (
            labels is not None
            and decoded.predictions is not None
            and len(labels) == len(decoded.predictions)
        ):
            w.labelled += len(labels)
            w.correct += sum(same_prediction(p, y) for p, y in zip(decoded.predictions, labels))

    def drain(self) -> list[dict[str, Any]]:
        records = [w.to_record() for w in self._open.values()]
        self._open = {}
        return records
