"""The game-day plan: an ordered runbook of scenarios and manual checkpoints.

```yaml
name: fraud-q3-gameday
hypothesis: The fraud service keeps its SLOs when the feature store misbehaves.
roles: {commander: Alice, scribe: Bob, observer: Carol}
steps:
  - checkpoint: Announce the game day in #fraud-oncall
    role: commander
  - scenario: ../scenarios/feature-store-latency.yaml
    hypothesis: p95 stays under 250 ms while the store is slow
    expect: pass                 # pass | fail (a run meant to break, e.g. a fragile twin)
  - checkpoint: Did the latency alert fire?
    role: observer
action_items: [Review the feature-store timeout]
```
Scenario paths are relative to the plan file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from harness.engine.scenario.loader import LoadedScenario, ScenarioError, load_scenario
from harness.engine.scenario.model import Name, Output, Strict
from harness.workflows.gameday.yamlfile import PlanError, load_model, problem_at


class Step(Strict):
    """One runbook step: either a scenario to run or a manual checkpoint."""

    scenario: str | None = None
    checkpoint: str | None = None
    hypothesis: str = ""
    expect: Literal["pass", "fail"] = "pass"
    quick: bool | None = None  # None: the game day's --quick
    role: str | None = None  # who acts at this step (a key of roles:)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if (self.scenario is None) == (self.checkpoint is None):
            raise ValueError(
                "say exactly one of scenario: (a file to run) or checkpoint: (a manual step)"
            )
        return self

    @property
    def title(self) -> str:
        return self.checkpoint or self.scenario or ""


class GameDayPlan(Strict):
    name: Name
    description: str = ""
    hypothesis: str = ""
    roles: dict[str, str] = Field(default_factory=dict)  # role -> person
    steps: list[Step] = Field(min_length=1)
    action_items: list[str] = Field(default_factory=list)
    output: Output = Field(default_factory=Output)


@dataclass
class LoadedPlan:
    plan: GameDayPlan
    path: Path
    scenarios: dict[int, LoadedScenario]  # step index -> loaded scenario


def load_plan(path: str | Path) -> LoadedPlan:
    """Load a game-day plan and every scenario it names, or raise PlanError/ScenarioError."""
    p = Path(path)
    plan, marks = load_model(p, GameDayPlan, "game-day plan")
    problems = []
    scenarios: dict[int, LoadedScenario] = {}
    for i, step in enumerate(plan.steps):
        if step.role is not None and step.role not in plan.roles:
            known = ", ".join(plan.roles) or "none declared"
            problems.append(
                problem_at(
                    str(p),
                    marks,
                    ("steps", i, "role"),
                    f"unknown role {step.role!r}; roles: {known} (declare it under roles:)",
                )
            )
        if step.scenario is None:
            continue
        file = (p.parent / step.scenario).resolve()
        if not file.is_file():
            problems.append(
                problem_at(
                    str(p),
                    marks,
                    ("steps", i, "scenario"),
                    f"scenario file {step.scenario!r} not found (looked in {file.parent})",
                )
            )
            continue
        try:
            scenarios[i] = load_scenario(file)
        except ScenarioError as exc:
            problems.append(
                problem_at(
                    str(p),
                    marks,
                    ("steps", i, "scenario"),
                    f"scenario {step.scenario!r} is invalid:\n  "
                    + "\n  ".join(map(str, exc.problems)),
                )
            )
    if problems:
        raise PlanError(problems)
    return LoadedPlan(plan, p, scenarios)
