"""The capacity search end to end: check the input, plan the trials from the budget, sweep
healthy then under fault, and write capacity.json, summary.md and capacity.html.

The healthy sweep runs first; the fault sweep then searches below the healthy sweep's first
failure (a fault is not expected to add capacity), which saves trials. Every trial's run
folder is kept under `trials/`. Exit codes: 0 both knees found, 1 the budget ran out first
(the best bracket is reported), 2 bad input, 4 a trial broke (the target would not start,
a fault did not act), 130 interrupted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.core.fault import UserError
from harness.core.units import parse_duration
from harness.engine.scenario.loader import LoadedScenario, load_scenario
from harness.reports.capacity_page import LOAD_UNITS, capacity_html, capacity_markdown
from harness.workflows.capacity.plan import (
    TrialPlan,
    fault_trial,
    healthy_trial,
    plan_trials,
    reserve_s,
)
from harness.workflows.capacity.search import (
    BudgetSpent,
    KneeSearch,
    SearchKind,
    SearchOutcome,
    level_grid,
    planned_trials,
)
from harness.workflows.capacity.trials import (
    LoadKind,
    Sweep,
    Trial,
    at_level,
    healthy_variant,
    longest_recovery,
    run_trial,
)

EXIT_DONE, EXIT_BUDGET, EXIT_BAD_INPUT, EXIT_BROKEN, EXIT_INTERRUPTED = 0, 1, 2, 4, 130
DEFAULT_STEPS = 16  # grid levels when --step is not given
MAX_RATE = 100_000  # requests/s: load.rate's own bound


class TrialBroken(Exception):
    """A trial ended in an error (not an SLO verdict): the search cannot go on."""

    def __init__(self, trial: Trial) -> None:
        super().__init__(trial.message)
        self.trial = trial


@dataclass
class CapacityRequest:
    scenario: Path
    max_users: int | None = None
    max_rate: float | None = None
    budget: str = "10m"
    step: float | None = None
    seed: int | None = None
    search: SearchKind = "bisect"
    confirm: bool = True
    output: Path | None = None
    allow_hosts: list[str] = field(default_factory=list)


@dataclass
class SweepResult:
    sweep: Sweep
    knee: float | None
    first_failure: float | None
    complete: bool
    flipped_levels: list[float]
    verdicts: list[dict[str, Any]]  # per level tested: level, votes, holds


def parse_request(req: CapacityRequest) -> tuple[LoadedScenario, float, list[float]]:
    """The loaded scenario, the budget in seconds and the level grid; UserError on bad input."""
    if (req.max_users is None) == (req.max_rate is None):
        raise UserError("capacity: give one of --max-users N (closed-loop users) or --max-rate R (arrival rate)")
    loaded = load_scenario(req.scenario, allow_hosts=req.allow_hosts)
    try:
        budget_s = parse_duration(req.budget)
    except (ValueError, TypeError) as exc:
        raise UserError(f"capacity: --budget {req.budget!r}: {exc}; write a duration, e.g. 10m or 90s") from None
    if budget_s <= 0:
        raise UserError(f"capacity: --budget {req.budget!r}: must be more than 0s, e.g. 10m")
    if req.max_rate is not None:
        levels = _rate_levels(req.max_rate, req.step)
    else:
        if loaded.scenario.load.rate is not None:
            raise UserError(f"capacity: --max-users: {req.scenario}: load.rate: the scenario's load is an arrival "
                            "rate: search it with --max-rate R (requests/s)")
        levels = _user_levels(req.max_users, req.step)
    if not loaded.scenario.slos:
        raise UserError(f"capacity: {req.scenario}: slos: the scenario has no SLOs, so no level can be judged; add one")
    if not loaded.scenario.timeline.faults:
        raise UserError(f"capacity: {req.scenario}: timeline.faults: the scenario has no faults, so there is no "
                        "capacity under fault to compare; add a fault")
    if loaded.scenario.load.locustfile:
        raise UserError(f"capacity: {req.scenario}: load.locustfile: a custom locustfile sets its own load; "
                        "the search needs the harness's users (load.users or load.rate)")
    return loaded, budget_s, levels


def _user_levels(maximum: int | None, step: float | None) -> list[float]:
    assert maximum is not None
    if maximum < 1:
        raise UserError(f"capacity: --max-users {maximum}: must be 1 or more")
    step = step if step is not None else max(1, -(-maximum // DEFAULT_STEPS))
    if step <= 0 or step > maximum or step != int(step):
        raise UserError(f"capacity: --step {step:g}: must be a whole number of users from 1 to --max-users ({maximum})")
    return level_grid(float(maximum), float(step), integral=True)


def _rate_levels(maximum: float, step: float | None) -> list[float]:
    if not maximum > 0 or maximum > MAX_RATE:
        raise UserError(f"capacity: --max-rate {maximum:g}: must be more than 0 and at most {MAX_RATE} requests/s")
    step = step if step is not None else maximum / DEFAULT_STEPS
    if not 0 < step <= maximum:
        raise UserError(f"capacity: --step {step:g}: must be a rate (requests/s) more than 0 and at most "
                        f"--max-rate ({maximum:g})")
    return level_grid(maximum, step, integral=False)


class CapacitySearch:
    def __init__(self, req: CapacityRequest, log: Callable[[str], None] = print) -> None:
        self.req = req
        self.log = log
        self.loaded, self.budget_s, self.levels = parse_request(req)
        self.load: LoadKind = "users" if req.max_rate is None else "rate"
        s = self.loaded.scenario
        self.seed = s.seed if req.seed is None else req.seed
        per_sweep = planned_trials(len(self.levels), req.search, req.confirm)
        self.recovery_s = longest_recovery(self.loaded)
        self.plan: TrialPlan = plan_trials(s, self.budget_s, 2 * per_sweep, self.recovery_s)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.out_dir = (req.output or Path(s.output.dir) / "capacity" / s.name / stamp).absolute()
        self.trials: list[Trial] = []
        self.started = 0.0
        self.deadline = 0.0
        self.stop_note = ""

    def run(self) -> int:
        """Both sweeps, then the pages; returns the exit code."""
        self.started = time.time()
        self.deadline = self.started + self.budget_s - reserve_s(self.budget_s)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        p = self.plan
        self.log(f"capacity {self.loaded.scenario.name}: levels {self.levels[0]:g}..{self.levels[-1]:g} {LOAD_UNITS[self.load]}, "
                 f"~{p.trials} trials of {p.healthy_load_s:.0f}s (healthy) / {p.fault_load_s:.0f}s (faults) "
                 f"of load (steady state x{p.factor:.2f}) in {self.budget_s:g}s; "
                 f"seed {self.seed} → {self.out_dir}")
        sweeps: list[SweepResult] = []
        code = EXIT_DONE
        try:
            # the healthy sweep may use half the time; what it leaves goes to the fault sweep, so
            # that a slow box still brackets both knees rather than one
            halfway = self.started + (self.deadline - self.started) / 2
            healthy = self._sweep("healthy", healthy_variant(self.loaded), None, halfway)
            sweeps.append(healthy)
            ceiling = None if healthy.first_failure is None else self.levels.index(healthy.first_failure)
            sweeps.append(self._sweep("fault", self.loaded, ceiling, self.deadline))
            if not all(s.complete for s in sweeps):
                code = EXIT_BUDGET
        except TrialBroken as exc:
            self.stop_note = f"stopped: a trial broke ({exc.trial.status}): {exc.trial.message}"
            code = EXIT_INTERRUPTED if exc.trial.status == "interrupted" else EXIT_BROKEN
        except KeyboardInterrupt:  # between two trials (a trial's own Ctrl-C ends it as `interrupted`)
            self.stop_note, code = "stopped: interrupted", EXIT_INTERRUPTED
        if code == EXIT_BUDGET:
            self.stop_note = "the time budget ran out before the search finished: the best bracket found is reported"
        record = self._record(sweeps, code)
        self._write(record)
        return code

    def _sweep(self, sweep: Sweep, variant: LoadedScenario, ceiling: int | None, until: float) -> SweepResult:
        """One sweep's search; no trial starts that would end after `until`."""
        shaped = (healthy_trial(variant.scenario, self.plan.factor) if sweep == "healthy"
                  else fault_trial(variant.scenario, self.plan.factor, self.recovery_s))
        trial_dir = self.out_dir / "trials" / sweep

        def judge(level: float) -> bool:
            expected = max([t.wall_s for t in self.trials] or [self.plan.trial_s])
            if time.time() + expected > until:
                raise BudgetSpent
            repeat = 1 + sum(t.sweep == sweep and t.level == level for t in self.trials)
            trial = run_trial(at_level(variant, shaped, level, self.seed, self.load), sweep, level, repeat,
                              trial_dir, self.deadline)
            self.trials.append(trial)
            word = {True: "held", False: "failed", None: "no verdict"}[trial.held]
            self.log(f"  {sweep:7} {level:>6g} {LOAD_UNITS[self.load]} #{repeat}: {word} ({trial.status}, p95 "
                     f"{_fmt(trial.p95_ms, 'ms')}, errors {_fmt(trial.error_rate, '')}, {trial.wall_s:.0f}s)")
            if trial.held is None:
                if "time budget" in trial.message:
                    raise BudgetSpent
                raise TrialBroken(trial)
            return trial.held

        outcome = KneeSearch(self.levels, judge, self.req.search, self.req.confirm, ceiling).run()
        return _sweep_result(sweep, outcome)

    def _record(self, sweeps: list[SweepResult], code: int) -> dict[str, Any]:
        by = {s.sweep: s for s in sweeps}
        healthy, fault = by.get("healthy"), by.get("fault")
        headroom = None
        if healthy and fault and healthy.knee and fault.knee is not None:
            headroom = fault.knee / healthy.knee
        return {
            "schema": "aftershock.capacity/1",
            "scenario": self.loaded.scenario.name,
            "file": str(self.loaded.path),
            "load": self.load,
            "levels": self.levels,
            "step": self.levels[1] - self.levels[0] if len(self.levels) > 1 else self.levels[0],
            "seed": self.seed,
            "search": self.req.search,
            "knee_rule": "the highest level that held on a majority of its trials, below the lowest that failed",
            "budget_s": self.budget_s,
            "elapsed_s": round(time.time() - self.started, 1),
            "plan": asdict(self.plan),
            "exit_code": code,
            "complete": code == EXIT_DONE,
            "note": self.stop_note,
            "slos": [{"name": s.name, "expect": s.expect} for s in self.loaded.scenario.slos],
            "healthy_slos": [s.name for s in healthy_variant(self.loaded).scenario.slos],
            "slo_limits": self._slo_limits(),
            "sweeps": {s.sweep: asdict(s) for s in sweeps},
            "headroom": headroom,
            "trials": [asdict(t) for t in self.trials],
        }

    def _slo_limits(self) -> list[dict[str, Any]]:
        """Each SLO's threshold, as the first trial that judged it measured it (for the chart's lines)."""
        limits: dict[str, dict[str, Any]] = {}
        for t in self.trials:
            for v in t.slos:
                if v.get("threshold") is not None:
                    limits.setdefault(v["name"], {k: v[k] for k in ("name", "expect", "threshold")})
        return list(limits.values())

    def _write(self, record: dict[str, Any]) -> None:
        (self.out_dir / "capacity.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (self.out_dir / "summary.md").write_text(capacity_markdown(record), encoding="utf-8")
        (self.out_dir / "capacity.html").write_text(capacity_html(record), encoding="utf-8")


def _sweep_result(sweep: Sweep, outcome: SearchOutcome) -> SweepResult:
    verdicts = [{"level": v.level, "votes": v.votes, "holds": v.holds} for _, v in sorted(outcome.votes.items())]
    return SweepResult(sweep, outcome.knee, outcome.first_failure, outcome.complete, outcome.flipped_levels, verdicts)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    return f"{value:.0f} ms" if unit == "ms" else f"{value:.1%}"
