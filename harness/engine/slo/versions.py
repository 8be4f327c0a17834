"""Model versions in a run: the ones faults named bad, their share of the answers, and when
a bad one stopped serving (the SLIs `bad_version_share` and `rollback_time`).

A fault names its bad versions (`Fault.bad_versions`, journaled with `fault.injected`);
the load counts responses by the version they name (`Window.versions`). A version named
bad by any fault of the run counts as bad in every window.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.windows import Window
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo.series import Series


def bad_versions(timeline: RunTimeline) -> set[str]:
    return {v for span in timeline.faults for v in span.bad_versions}


def served_by(window: Window, versions: set[str]) -> int:
    """Requests (answered or failed) whose response named one of `versions`."""
    return sum(counts.requests for name, counts in window.versions.items() if name in versions)


def bad_version_share(window: Window | None, timeline: RunTimeline) -> float | str:
    """Requests served by a bad version / requests whose response named a version; a str
    says why it is not measured."""
    bad = bad_versions(timeline)
    if not bad:
        return "no fault named a bad model version"
    named = sum(c.requests for c in window.versions.values()) if window is not None else 0
    if not named:
        return "no response named its model version (point the protocol's model_version at it)"
    assert window is not None
    return served_by(window, bad) / named


@dataclass
class Rollback:
    """One fault's bad versions: the last window they served in, against its horizon."""

    fault: Span
    last_served: Window | None  # None: a bad version never answered
    horizon: float  # the fault's own revert (the harness rolled back), else the run's end
    horizon_why: str
    # a later window, whole before the horizon, answered by good versions only: the target
    # was seen serving without the bad version before the harness rolled it back
    seen_good_after: bool = False

    @property
    def rolled_back(self) -> bool:
        """The target stopped serving the bad version itself: after the last window a bad
        version answered in, a window before the horizon saw only good ones. (A last bad
        window that merely ends a few ms before the revert, the next one holding no request
        yet, is no rollback: the bad version served up to the revert, as windows see it.)"""
        return self.last_served is None or self.seen_good_after

    @property
    def after(self) -> float | None:
        """Seconds from the rollout until the end of the last window a bad version served in
        (accurate to one window, never under-reported); None: not rolled back."""
        if not self.rolled_back:
            return None
        if self.last_served is None:
            return 0.0
        return max(0.0, self.last_served.end - self.fault.start)


def rollback_of(span: Span, series: Series) -> Rollback | None:
    """When `span`'s bad versions stopped serving; None if no response in or after it named
    a version (not measured)."""
    run_end = series.timeline.run.end
    if span.end is not None:
        horizon, why = span.end, f"its revert at the end of {span.name}"
    else:
        horizon = run_end if run_end is not None else (series.windows[-1].end if series.windows else span.start)
        why = "the end of the run"
    bad = set(span.bad_versions)
    seen_version, last, good_after = False, None, False
    for w in series.windows:
        if w.end <= span.start:
            continue
        seen_version = seen_version or bool(w.versions)
        if served_by(w, bad):
            last, good_after = w, False
        elif w.versions and w.end <= horizon:
            good_after = True
    if not seen_version:
        return None
    return Rollback(span, last, horizon, why, good_after)
