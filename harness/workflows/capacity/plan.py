"""Trial durations planned from the time budget.

Every trial is one full run of the scenario (target start, warm-up, load, teardown), so the
budget is split by the trials both sweeps are expected to take, less each trial's start and
stop overhead; the scenario's durations (warm-up, load, baseline, fault offsets) are all
scaled by one factor, the same for every trial so that their verdicts compare. A trial is
never longer than the scenario itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.engine.scenario.model import Scenario

# start + teardown of one trial, before one is measured: the demo imports torch and trains
# or loads its model (seconds on a busy 2-core box); a plain command or URL target is quick
DEMO_OVERHEAD_S = 20.0
PLAIN_OVERHEAD_S = 6.0
MIN_LOAD_S = 3.0  # shorter trials measure too few windows to judge an SLO
MIN_WINDOWS = 15


def reserve_s(budget_s: float) -> float:
    """Kept free at the end of the budget: a stopped trial's rollback and teardown, and the pages."""
    return min(15.0, max(4.0, 0.05 * budget_s))


@dataclass(frozen=True)
class TrialPlan:
    budget_s: float
    trials: int  # expected over both sweeps
    overhead_s: float  # estimated start + stop of one trial
    factor: float  # every scenario duration times this
    load_s: float  # warm-up + load of one trial, after scaling

    @property
    def trial_s(self) -> float:
        return self.overhead_s + self.load_s


def plan_trials(scenario: Scenario, budget_s: float, trials: int) -> TrialPlan:
    overhead = DEMO_OVERHEAD_S if scenario.target.demo else PLAIN_OVERHEAD_S
    full = scenario.load.warmup + scenario.load.duration
    per_trial = (budget_s - reserve_s(budget_s)) / max(trials, 1) - overhead
    floor = min(1.0, MIN_LOAD_S / full)
    factor = min(1.0, max(floor, per_trial / full))
    return TrialPlan(budget_s, trials, overhead, factor, full * factor)


def scaled_scenario(scenario: Scenario, factor: float, recovery_s: float = 0.0) -> Scenario:
    """A copy with every duration (warm-up included) times `factor`. A trial left with fewer
    than MIN_WINDOWS windows gets 0.5 s windows, as --quick does, so that it still has windows
    to judge; otherwise the scenario's window stays (a shorter one makes a stall of the load on
    a busy box an empty window, which availability counts as down).

    The load after the last fault is kept long enough (up to what the scenario has) to see a
    recovery of `recovery_s` (the longest `recovery_time < X` an SLO allows) and the windows
    that confirm it: scaled shorter, a recovery the SLO allows could not be seen at all and
    would count as a failure that the scenario never meant."""
    out = scenario.scaled(factor) if factor < 1 else scenario.model_copy(deep=True)
    if factor >= 1:
        return out
    out.load.warmup *= factor
    if out.timeline.faults and recovery_s > 0:
        need = recovery_s + out.settings.recovery_windows * out.load.window
        tail = out.load.duration - max(f.at + f.duration for f in out.timeline.faults)
        full_tail = scenario.load.duration - max(f.at + f.duration for f in scenario.timeline.faults)
        out.load.duration += max(0.0, min(need, full_tail) - tail)
    if out.load.duration / out.load.window < MIN_WINDOWS:
        out.load.window = min(out.load.window, 0.5)
    return out
