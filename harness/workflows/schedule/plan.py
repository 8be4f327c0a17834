"""The schedule plan: which scenarios and game days run when (cron expressions).

```yaml
name: fraud-resilience
output: {dir: reports}
jobs:
  - name: nightly-latency
    cron: "0 3 * * *"                 # minute hour day-of-month month day-of-week (UTC)
    scenario: ../scenarios/feature-store-latency.yaml
    quick: true
  - name: monthly-gameday
    cron: "0 10 1 * *"
    gameday: gameday.yaml             # always run unattended on a schedule
```
Paths are relative to the plan file. A sixth cron field (seconds, croniter's
convention) is accepted by `aftershock schedule` itself, but not by the exporters:
crontab, Kubernetes and GitHub Actions count in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from harness.core.fault import UserError
from harness.engine.scenario.model import Name, Output, Strict
from harness.workflows.gameday.yamlfile import PlanError, load_model, problem_at


class Job(Strict):
    name: Name
    cron: str
    scenario: str | None = None
    gameday: str | None = None
    quick: bool = False

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, v: str) -> str:
        if len(v.split()) not in (5, 6) or not croniter.is_valid(v):
            raise ValueError(
                f"invalid cron expression {v!r}: write five fields, "
                "minute hour day-of-month month day-of-week, e.g. '0 3 * * *' (03:00 every day)"
            )
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> Job:
        if (self.scenario is None) == (self.gameday is None):
            raise ValueError(
                "say exactly one of scenario: (a scenario file) or gameday: (a game-day plan)"
            )
        return self

    @property
    def has_seconds(self) -> bool:
        return len(self.cron.split()) == 6


class SchedulePlan(Strict):
    name: Name
    jobs: list[Job] = Field(min_length=1)
    output: Output = Field(default_factory=Output)


@dataclass
class LoadedSchedule:
    plan: SchedulePlan
    path: Path

    def file_of(self, job: Job) -> Path:
        return (self.path.parent / (job.scenario or job.gameday or "")).resolve()

    def job(self, name: str) -> Job:
        for j in self.plan.jobs:
            if j.name == name:
                return j
        raise UserError(
            f"--job {name}: no such job in {self.path}; jobs: {', '.join(j.name for j in self.plan.jobs)}"
        )


def load_schedule(path: str | Path) -> LoadedSchedule:
    """Load a schedule plan and check the files it names (each is loaded fully when it runs)."""
    p = Path(path)
    plan, marks = load_model(p, SchedulePlan, "schedule plan")
    problems = []
    names: set[str] = set()
    for i, job in enumerate(plan.jobs):
        if job.name in names:
            problems.append(
                problem_at(
                    str(p), marks, ("jobs", i, "name"), f"job name {job.name!r} is used twice"
                )
            )
        names.add(job.name)
        field = "scenario" if job.scenario else "gameday"
        file = (p.parent / getattr(job, field)).resolve()
        if not file.is_file():
            problems.append(
                problem_at(
                    str(p),
                    marks,
                    ("jobs", i, field),
                    f"{field} file {getattr(job, field)!r} not found (looked in {file.parent})",
                )
            )
    if problems:
        raise PlanError(problems)
    return LoadedSchedule(plan, p)
