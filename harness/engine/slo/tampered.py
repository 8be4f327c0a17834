"""The SLI `tampered_served`: requests answered by a model version that a `model.tamper`
fault named (its `bad_versions`), counted from the version each response names.

A target that verifies its artifacts refuses the tampered one and never serves it: 0. A
bad version named by another fault (a degraded rollout) does not count here: that is
`bad_version_share`.
"""

from __future__ import annotations

from harness.core.windows import Window
from harness.engine.phases import RunTimeline
from harness.engine.slo.versions import served_by

TAMPER_FAULT = "model.tamper"  # the engine knows faults by their type name only


def tampered_versions(timeline: RunTimeline) -> set[str]:
    return {v for span in timeline.faults if span.fault_type == TAMPER_FAULT for v in span.bad_versions}


def tampered_served(window: Window | None, timeline: RunTimeline) -> float | str:
    """Requests whose response named a tampered version; a str says why it is not measured."""
    tampered = tampered_versions(timeline)
    if not tampered:
        return f"no {TAMPER_FAULT} fault named a model version"
    if window is None or not window.versions:
        return "no response named its model version (point the protocol's model_version at it)"
    return float(served_by(window, tampered))
