"""One trial: the scenario run once by the engine's Runner at one load level, healthy or
with its faults, and what the search needs from its result.

Healthy means the timeline's faults and attacks are taken out, and with them the SLOs that
only mean something around a fault (scoped `during` a fault, the faults or the recovery;
recovery_time, detection_time, degradation): without a fault they have no data to judge.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from harness.engine.runner import Runner, RunOptions, rate_shortfall
from harness.engine.scenario.loader import LoadedScenario
from harness.engine.scenario.model import Scenario
from harness.engine.slo.ast import Number, RecoveryTime

Sweep = Literal["healthy", "fault"]
LoadKind = Literal["users", "rate"]  # what a level is: closed-loop users, or an arrival rate (requests/s)
MAX_POOL = 100_000  # load.users' own bound
BUDGET_STOP = "the capacity search's time budget ran out"
FAULT_MEASURES = re.compile(r"\b(recovery_time|detection_time|degradation)\b")
DURING = re.compile(r"\bduring\s+([A-Za-z0-9_.-]+)")


@dataclass
class Trial:
    sweep: Sweep
    level: float
    repeat: int  # 1 for the first trial at this level and sweep
    run_dir: str
    status: str  # the run's: passed | failed | aborted | error | interrupted
    exit_code: int
    held: bool | None  # None: the trial told nothing (cut by the budget, broken)
    wall_s: float
    p95_ms: float | None  # over the windows the sweep is about (the fault's, under fault)
    error_rate: float | None
    throughput: float | None
    slos: list[dict[str, Any]] = field(default_factory=list)  # name, expect, passed, measured, unit, threshold
    message: str = ""


def fault_bound(expect: str, fault_scopes: set[str]) -> bool:
    """Whether an SLO only means something with a fault in the run."""
    return bool(FAULT_MEASURES.search(expect)) or any(s in fault_scopes for s in DURING.findall(expect))


def healthy_variant(loaded: LoadedScenario) -> LoadedScenario:
    """The scenario without its faults and attacks, and without the SLOs only they give data to."""
    s = loaded.scenario.model_copy(deep=True)
    scopes = {"fault", "recovery", *(e.name for e in (*s.timeline.faults, *s.timeline.attacks))}
    keep = [i for i, slo in enumerate(s.slos) if not fault_bound(slo.expect, scopes)]
    s.timeline.faults, s.timeline.attacks = [], []
    s.slos = [s.slos[i] for i in keep]
    lines = [loaded.slo_lines[i] for i in keep] if len(loaded.slo_lines) == len(loaded.slos) else []
    return replace(loaded, scenario=s, faults=[], attacks=[], slos=[loaded.slos[i] for i in keep], slo_lines=lines)


def longest_recovery(loaded: LoadedScenario) -> float:
    """The longest recovery an SLO allows (`recovery_time < 10s`: 10), 0 without such an SLO."""
    limits = [slo.comparison.right.value for slo in loaded.slos
              if isinstance(slo.comparison.left, RecoveryTime) and isinstance(slo.comparison.right, Number)]
    return max(limits, default=0.0)


def rate_pool(rate: float, scenario: Scenario) -> int:
    """The users pacing an arrival rate: the scenario's own, or as many as the rate needs to
    hold until answers take the whole request timeout (each user waits for its answer, so
    a pool of N holds N / latency requests/s), whichever is more; so the pool never caps a
    level's load before the target's own latency fails it."""
    return min(MAX_POOL, max(scenario.load.users, math.ceil(rate * scenario.load.request_timeout)))


def at_level(loaded: LoadedScenario, shaped: Scenario, level: float, seed: int, load: LoadKind = "users") -> LoadedScenario:
    """`loaded` with its scenario replaced by `shaped` (scaled) at `level` (users, or
    requests/s of arrival rate paced by rate_pool's users) and `seed`."""
    s = shaped.model_copy(deep=True)
    if load == "rate":
        s.load.rate = level
        s.load.users = rate_pool(level, s)
    else:
        s.load.users = int(level)
    s.load.spawn_rate = None  # all at once: a trial is too short to ramp
    s.seed = seed
    return replace(loaded, scenario=s)


def run_trial(loaded: LoadedScenario, sweep: Sweep, level: float, repeat: int, out_dir: Path,
              deadline: float) -> Trial:
    """Run the scenario once; stopped (and reverted) by the Runner if `deadline` passes."""
    runner = Runner(loaded, RunOptions(output_dir=out_dir))
    timer = threading.Timer(max(0.0, deadline - time.time()), runner.request_stop, args=(BUDGET_STOP,))
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    try:
        result = runner.run()
    finally:
        timer.cancel()
    data = result.result
    cut = result.status == "aborted" and BUDGET_STOP in (result.message or "")
    if cut or result.status in ("error", "interrupted"):
        held = None
    else:  # a stop condition that tripped (aborted) means the level did not hold
        held = result.status == "passed"
    load = loaded.scenario.load
    if held and rate_shortfall(load.rate, load.users, (data.get("slis") or {}).get("run"), load.duration):
        held = False  # the SLOs judged a lighter load than the level (the run's message says so)
    scope = "fault" if sweep == "fault" and "fault" in (data.get("slis") or {}) else "run"
    slis = (data.get("slis") or {}).get(scope) or {}
    return Trial(
        sweep=sweep, level=level, repeat=repeat, run_dir=str(result.run_dir), status=result.status,
        exit_code=result.exit_code, held=held, wall_s=round(time.monotonic() - started, 2),
        p95_ms=slis.get("p95(latency)"), error_rate=slis.get("error_rate"), throughput=slis.get("throughput"),
        slos=[{k: v.get(k) for k in ("name", "expect", "passed", "measured", "unit", "threshold")} for v in data.get("slos") or []],
        message="cut short by the time budget" if cut else (result.message or ""),
    )
