"""The run's timeline as it actually happened: spans of wall-clock time per phase.

The runner fills it in as the run goes (actual inject/revert instants, not the
planned offsets); SLO scopes (`during baseline`, `during <fault>`, `during recovery`)
select windows through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Span:
    name: str  # "baseline", "recovery", "run", or the fault's name
    kind: str  # "baseline" | "fault" | "recovery" | "run"
    start: float  # Unix seconds
    end: float | None = None  # None while still open
    fault_type: str | None = None  # for kind == "fault"
    # model versions the fault put out as bad (e.g. a degraded rollout): what the
    # bad_version_share and rollback_time SLIs look for in the responses
    bad_versions: tuple[str, ...] = ()

    def contains(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass
class RunTimeline:
    run: Span
    baseline: Span | None = None
    faults: list[Span] = field(default_factory=list)  # actual inject .. revert per fault
    recovery: Span | None = None  # last fault reverted .. run end
    attacks: list[Span] = field(default_factory=list)  # actual start .. end per attack

    def scope(self, name: str) -> list[Span]:
        """Spans for a scope name: baseline, fault (all faults), recovery, run, or a fault or attack name."""
        if name == "run":
            return [self.run]
        if name == "baseline":
            return [self.baseline] if self.baseline else []
        if name == "recovery":
            return [self.recovery] if self.recovery else []
        if name == "fault":
            return list(self.faults)
        return [s for s in (*self.faults, *self.attacks) if s.name == name]

    def scope_names(self) -> list[str]:
        return ["run", "baseline", "fault", "recovery", *[s.name for s in (*self.faults, *self.attacks)]]
