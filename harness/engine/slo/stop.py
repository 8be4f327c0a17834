"""`stop_when` conditions judged as a run goes, each completed window looked at once.

A `StopTrigger` keeps what its condition needs between ticks: the current streak of
windows where the condition was true, the probe values held so far, and the windows of
each scope an SLI names with its own `during` -- no other old window.  A tick judges only
the windows that completed since the last one, so its cost does not grow with the run: 10
windows or 7200 before it, a tick does the same work (benchmarks/stop_when_bench.py).  A
value over a scope (`3 * p95(latency) during baseline`) is computed again only when that
scope gained a window or its span changed: a closed span such as the baseline is computed
once; an open one (`during run`) covers, and so merges, all of its windows each tick.

The run is judged as live: an empty window after the first busy one, inside the run, is
*stalled* (nothing answered) and counts as the condition being true, like a window where
every request failed: a service that answers nothing should stop a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from harness.core.windows import Window
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo.ast import SliRef, StopCondition, measures
from harness.engine.slo.evaluate import Evaluator, display_unit, format_value
from harness.engine.slo.series import Series
from harness.engine.slo.settings import SloSettings
from harness.engine.slo.sli import Missing, Value, compute

_EPS = 1e-9
SpansSignature = tuple[tuple[float, float | None], ...]  # (start, end) of each span of a scope


@dataclass(frozen=True)
class CachedScopeValue:
    """An SLI over a scope, and the state of the scope's windows it was computed from."""

    signature: SpansSignature
    windows: int
    value: Value


class _LiveEvaluator(Evaluator):
    """An `Evaluator` whose scope-wide values come from the trigger's incremental cache."""

    def __init__(self, series: Series, settings: SloSettings, trigger: StopTrigger) -> None:
        super().__init__(series, settings)
        self.trigger = trigger

    def scope_value(self, sli: SliRef, scope: str) -> Value:
        return self.trigger.scope_value(sli, scope)


class StopTrigger:
    """One `stop_when` condition over a run's windows as they complete."""

    def __init__(self, cond: StopCondition, settings: SloSettings | None = None) -> None:
        self.cond = cond
        self.settings = settings or SloSettings()
        self.tripped: str | None = None
        self.next_index: int | None = None  # the first window not judged yet
        self._streak = 0
        self._streak_start = 0.0
        self._held: dict[str, float] = {}  # probe values carried into windows without a sample
        self._busy_windows = 0
        self._busy_requests = 0
        # the scopes SLIs name with their own `during`, and the windows kept for each
        self._scopes = {
            m.scope: _ScopeWindows()
            for m in measures(cond.comparison)
            if isinstance(m, SliRef) and m.scope
        }
        self._values: dict[tuple[SliRef, str], CachedScopeValue] = {}

    def feed(self, windows: Iterable[Window], timeline: RunTimeline) -> str | None:
        """Judge the completed windows not seen before; a reason once the condition held for
        its `for` duration of consecutive windows (and from then on), else None.

        Pass windows in any order; ones already judged are skipped, missing indices between
        two windows are filled in as empty windows (a hang may leave no record)."""
        for w in sorted(windows, key=lambda w: w.index):
            if self.tripped:
                break
            if self.next_index is not None and w.index < self.next_index:
                continue
            for gap in range(w.index if self.next_index is None else self.next_index, w.index):
                self._judge(Window(index=gap, size=w.size), timeline)
            self._judge(w, timeline)
        return self.tripped

    def _judge(self, w: Window, timeline: RunTimeline) -> None:
        self.next_index = w.index + 1
        one = self._series_of(w, timeline)
        mid = one.midpoint(0)
        for scope, kept in self._scopes.items():
            kept.add(one, timeline.scope(scope))
        scope = self.cond.scope or "run"
        judged = one.status[0] != "empty" and any(s.contains(mid) for s in timeline.scope(scope))
        if not judged:
            self._streak = 0
            return
        judged_now = _LiveEvaluator(one, self.settings, self).judge(self.cond.comparison, 0, scope)
        ok, a = judged_now.ok, judged_now.left
        if not (ok is True or (ok is False and isinstance(a, Missing) and a.failing)):
            self._streak = 0
            return
        if self._streak == 0:
            self._streak_start = w.start
        self._streak += 1
        if self._streak >= max(1, math.ceil((self.cond.seconds or 0) / w.size - _EPS)):
            unit = display_unit(self.cond.comparison.left)
            shown = a.reason if isinstance(a, Missing) else format_value(a, unit)
            since = timeline.run.start
            span = (
                f"for {self._streak * w.size:g} s (from +{self._streak_start - since:.1f} s)"
                if self.cond.seconds
                else f"at +{w.start - since:.1f} s"
            )
            self.tripped = (
                f"stop condition `{self.cond.text}` tripped {span}: "
                f"{self.cond.comparison.left} was {shown} in the last window"
            )

    def _series_of(self, w: Window, timeline: RunTimeline) -> Series:
        """`w` alone as a series, with its status (see the module docstring) and held probes."""
        self._held = {**self._held, **w.probes}
        if w.requests > 0:
            status = "data"
            self._busy_windows += 1
            self._busy_requests += w.requests
        elif w.activity > 0 or self._busy_windows == 0 or not timeline.run.contains((w.start + w.end) / 2):
            status = "empty"
        else:
            status = "stalled"
        return Series([w], [status], [self._held], timeline, self._stall_weight())

    def _stall_weight(self) -> float:
        """Requests a stalled window stands for: the mean over busy windows so far."""
        return self._busy_requests / self._busy_windows if self._busy_windows else 0.0

    def scope_value(self, sli: SliRef, scope: str) -> Value:
        """`sli` over `scope`'s windows seen so far, computed again only when they changed."""
        kept = self._scopes[scope]
        cached = self._values.get((sli, scope))
        if cached is not None and (cached.signature, cached.windows) == (kept.signature, len(kept.series.windows)):
            return cached.value
        kept.series.stall_weight = self._stall_weight()
        where = f"during {scope}" if kept.signature else f"(no span named {scope!r} yet)"
        idx = list(range(len(kept.series.windows)))
        value = compute(sli, kept.series, idx, where)
        self._values[(sli, scope)] = CachedScopeValue(kept.signature, len(idx), value)
        return value


class _ScopeWindows:
    """The windows of one scope seen so far (a trigger keeps no other old window).

    Spans only close or shrink as a run goes (a fault's end is set; a window is judged after
    it ended), so when they change the kept windows are filtered, never searched again."""

    def __init__(self) -> None:
        self.signature: SpansSignature = ()
        self.series = Series([], [], [], RunTimeline(run=Span("run", "run", 0.0)), 0.0)

    def add(self, one: Series, spans: list[Span]) -> None:
        signature = tuple((s.start, s.end) for s in spans)
        kept = self.series
        if signature != self.signature:
            self.signature = signature
            keep = kept.in_spans(spans)
            kept.windows = [kept.windows[i] for i in keep]
            kept.status = [kept.status[i] for i in keep]
            kept.probes = [kept.probes[i] for i in keep]
        if any(s.contains(one.midpoint(0)) for s in spans):
            kept.windows.append(one.windows[0])
            kept.status.append(one.status[0])
            kept.probes.append(one.probes[0])
        kept.timeline = one.timeline


def check_stop(
    cond: StopCondition,
    windows_so_far: list[Window],
    timeline_so_far: RunTimeline,
    settings: SloSettings | None = None,
) -> str | None:
    """A reason when `cond` has been true for its `for` duration of consecutive windows, else None.

    Judges every window from scratch; a run keeps one `StopTrigger` per condition instead
    and feeds it each tick's new windows.  A window where nothing completed (all failed,
    or stalled) counts as the condition being true."""
    return StopTrigger(cond, settings).feed(windows_so_far, timeline_so_far)
