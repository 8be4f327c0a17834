"""Scheduled resilience runs: cron-timed scenarios and game days, one at a time, with history."""

from harness.workflows.schedule.export import FORMATS, export_plan
from harness.workflows.schedule.lock import RunLock
from harness.workflows.schedule.plan import Job, LoadedSchedule, SchedulePlan, load_schedule
from harness.workflows.schedule.scheduler import Scheduler, next_fire, parse_until

__all__ = [
    "FORMATS",
    "Job",
    "LoadedSchedule",
    "RunLock",
    "SchedulePlan",
    "Scheduler",
    "export_plan",
    "load_schedule",
    "next_fire",
    "parse_until",
]
