"""Trial durations planned from the time budget.

Every trial is one full run of the scenario (target start, warm-up, load, teardown), so the
budget is split by the trials both sweeps are expected to take, less each trial's start and
stop overhead. What a trial shortens is the steady state: the warm-up, the baseline before the
first fault and, in healthy trials, the whole load, all by one factor, the same for every trial
so that their verdicts compare. The faults themselves keep their durations and the gaps between
them, and the load after the last fault keeps room for the recovery an SLO allows: a fault
shortened below what the target's own clocks expect (a cache TTL, a breaker's cool-down) would
test another scenario. A trial is never longer than the scenario itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.engine.scenario.model import Scenario

# start + teardown of one trial, before one is measured: the demo imports torch and trains
# or loads its model (seconds on a busy 2-core box); a plain command or URL target is quick
DEMO_OVERHEAD_S = 20.0
PLAIN_OVERHEAD_S = 6.0
MIN_STEADY_S = 5.0  # a warm-up, a baseline or a healthy load no shorter (or the scenario's own)
MIN_WINDOWS = 15  # fewer windows of the scenario's size: 0.5 s windows, as --quick uses


def reserve_s(budget_s: float) -> float:
    """Kept free at the end of the budget: a stopped trial's rollback and teardown, and the pages."""
    return min(15.0, max(4.0, 0.05 * budget_s))


@dataclass(frozen=True)
class TrialPlan:
    budget_s: float
    trials: int  # expected over both sweeps, half healthy and half under fault
    overhead_s: float  # estimated start + stop of one trial
    factor: float  # the steady-state durations times this
    healthy_load_s: float  # warm-up + load of one healthy trial
    fault_load_s: float  # ... of one trial with the faults

    @property
    def trial_s(self) -> float:
        """The longer trial's expected time, start to end."""
        return self.overhead_s + max(self.healthy_load_s, self.fault_load_s)


def _scaled(seconds: float, factor: float) -> float:
    return min(seconds, max(seconds * factor, MIN_STEADY_S))


def healthy_trial(scenario: Scenario, factor: float) -> Scenario:
    """The scenario (without faults) with its warm-up and load times `factor`."""
    out = scenario.model_copy(deep=True)
    out.load.warmup = _scaled(out.load.warmup, factor)
    out.load.duration = _scaled(out.load.duration, factor)
    out.timeline.baseline = min(out.timeline.baseline, out.load.duration)
    return _windows(out)


def fault_trial(scenario: Scenario, factor: float, recovery_s: float) -> Scenario:
    """The scenario with its warm-up and pre-fault baseline times `factor`, its faults and
    attacks as long and as far apart as written, and after the last of them room for a
    recovery of `recovery_s` (the longest `recovery_time < X` an SLO allows) and the windows
    that confirm it."""
    out = scenario.model_copy(deep=True)
    events = [*out.timeline.faults, *out.timeline.attacks]
    if not events:
        return healthy_trial(scenario, factor)
    out.load.warmup = _scaled(out.load.warmup, factor)
    first = min(e.at for e in events)
    shift = first - _scaled(first, factor)
    for e in events:
        e.at -= shift
    out.timeline.baseline = max(0.0, out.timeline.baseline - shift)
    last_end = max(e.at + e.duration for e in events)
    full_tail = scenario.load.duration - (last_end + shift)
    need = recovery_s + out.settings.recovery_windows * out.load.window
    out.load.duration = last_end + min(full_tail, max(full_tail * factor, need, MIN_STEADY_S))
    return _windows(out)


def _windows(out: Scenario) -> Scenario:
    if out.load.duration / out.load.window < MIN_WINDOWS:
        out.load.window = min(out.load.window, 0.5)
    return out


def plan_trials(scenario: Scenario, budget_s: float, trials: int, recovery_s: float) -> TrialPlan:
    """The largest factor (at most 1, in steps of 1 %) whose trials fit the budget."""
    overhead = DEMO_OVERHEAD_S if scenario.target.demo else PLAIN_OVERHEAD_S
    per_pair = 2 * (budget_s - reserve_s(budget_s)) / max(trials, 1) - 2 * overhead

    def loads(factor: float) -> tuple[float, float]:
        h, f = healthy_trial(scenario, factor), fault_trial(scenario, factor, recovery_s)
        return h.load.warmup + h.load.duration, f.load.warmup + f.load.duration

    factor = 1.0
    while factor > 0.01 and sum(loads(factor)) > per_pair:
        factor = round(factor - 0.01, 2)
    healthy_s, fault_s = loads(factor)
    return TrialPlan(budget_s, trials, overhead, factor, healthy_s, fault_s)
