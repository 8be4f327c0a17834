"""The run's windows made ready for SLIs: sorted, gaps filled, each window given a status.

Status of a window:
- "data": the load sent requests that started in it.
- "stalled": nothing moved in it although the load was running (everything hung): no
  request started in it AND none made progress (no completion, no streamed token; see
  `Window.activity`). Throughput is 0 and latency undefined and failing. Such windows
  after the first busy window and before the last one are stalled; after the last busy
  window they are stalled while the run is still open (live `stop_when` checks) or when
  they lie inside a fault span.
  The load stopped sending because its users were stuck, so a stalled window stands for
  the requests a busy window holds (coordinated omission), and they fare as the stuck
  requests did: the share that failed among the first requests to end, after the stall,
  that started before it (`Window.carried_*`). A hang that ends in timeouts is an outage
  (error rate 100 %); streams that paused 3 s and then finished were slow (inter-token
  latency), not failed. When none ended (the run closed on the hang, or a live check),
  all count as failed.
- "empty": nothing to judge: no data (before the load started, after it stopped), or no
  request started but some made progress (a stream longer than a window still flowing):
  skipped by every SLI.

Probe values are held: a window with no sample of a probe takes the last earlier one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.core.windows import Window
from harness.engine.phases import RunTimeline, Span


@dataclass
class Series:
    windows: list[Window]
    status: list[str]  # "data" | "stalled" | "empty", per window
    probes: list[dict[str, float]]  # held probe values per window
    timeline: RunTimeline
    stall_weight: float  # requests a stalled window stands for: the mean over busy windows
    # per window, the share of a stalled window's requests that failed (see above); None: all
    stall_failed: list[float] | None = None

    @classmethod
    def build(cls, windows: list[Window], timeline: RunTimeline) -> Series:
        ws = sorted(windows, key=lambda w: w.index)
        if ws:
            size = ws[0].size
            by_index = {w.index: w for w in ws}
            last = ws[-1].index
            if (
                timeline.run.end is not None
            ):  # cover the run to its end (a hang may leave no records)
                last = max(last, int((timeline.run.end - size / 2) // size))
            ws = [
                by_index.get(i) or Window(index=i, size=size) for i in range(ws[0].index, last + 1)
            ]
        busy = [i for i, w in enumerate(ws) if w.requests > 0]
        status = []
        for i, w in enumerate(ws):
            mid = (w.start + w.end) / 2
            if w.requests > 0:
                status.append("data")
            elif w.activity > 0 or not busy or i < busy[0] or not timeline.run.contains(mid):
                status.append("empty")
            elif (
                i < busy[-1]
                or timeline.run.end is None
                or any(f.contains(mid) for f in timeline.faults)
            ):
                status.append("stalled")
            else:
                status.append("empty")
        held: list[dict[str, float]] = []
        current: dict[str, float] = {}
        for w in ws:
            current = {**current, **w.probes}
            held.append(current)
        weight = sum(ws[i].requests for i in busy) / len(busy) if busy else 0.0
        return cls(ws, status, held, timeline, weight, _stall_outcomes(ws, status))

    def failed_share(self, i: int) -> float:
        """The share of stalled window `i`'s requests that failed."""
        return 1.0 if self.stall_failed is None else self.stall_failed[i]

    def midpoint(self, i: int) -> float:
        w = self.windows[i]
        return (w.start + w.end) / 2

    def in_spans(self, spans: list[Span]) -> list[int]:
        """Indices of windows whose midpoint lies inside any of `spans` (empty ones included).

        A span that holds no window's midpoint (an attack of a few quick queries, shorter
        than a window) stands for the windows it overlaps, so its figures are judged
        rather than lost as "not measured"."""
        picked: set[int] = set()
        for s in spans:
            inside = [i for i in range(len(self.windows)) if s.contains(self.midpoint(i))]
            if not inside:
                end = s.end if s.end is not None else math.inf
                inside = [
                    i
                    for i, w in enumerate(self.windows)
                    if (w.start < end and s.start < w.end) or w.start <= s.start < w.end
                ]
            picked.update(inside)
        return sorted(picked)

    def in_scope(self, scope: str) -> list[int]:
        return self.in_spans(self.timeline.scope(scope))

    def after(self, t: float) -> list[int]:
        """Windows whose midpoint is at or after `t` and inside the run."""
        return [
            i
            for i in range(len(self.windows))
            if self.midpoint(i) >= t and self.timeline.run.contains(self.midpoint(i))
        ]


def _stall_outcomes(ws: list[Window], status: list[str]) -> list[float]:
    """Per window, the failed share of the first requests to end after it that had started
    in an earlier window: for a stalled one, the requests stuck in it (1.0 where none ended;
    nothing ends inside a stall, so the next window with such requests is past it)."""
    shares = [1.0] * len(ws)
    after = 1.0  # the run ended before any stuck request did
    for i in range(len(ws) - 1, -1, -1):
        ended = ws[i].carried_ok + ws[i].carried_failed
        if status[i] != "stalled" and ended:
            after = ws[i].carried_failed / ended
        shares[i] = after
    return shares
