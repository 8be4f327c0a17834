"""Game days: an ordered runbook of scenarios and manual checkpoints, run with people in the loop."""

from harness.workflows.gameday.plan import GameDayPlan, LoadedPlan, Step, load_plan
from harness.workflows.gameday.session import GameDay, GameDayOutcome, Observation, StepRecord
from harness.workflows.gameday.yamlfile import PlanError

__all__ = [
    "GameDay",
    "GameDayOutcome",
    "GameDayPlan",
    "LoadedPlan",
    "Observation",
    "PlanError",
    "Step",
    "StepRecord",
    "load_plan",
]
