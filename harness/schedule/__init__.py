"""Scheduled resilience runs: cron-timed scenarios and game days, one at a time, with history."""

from harness.schedule.export import FORMATS, export_plan
from harness.schedule.lock import RunLock
from harness.schedule.plan import Job, LoadedSchedule, SchedulePlan, load_schedule
from harness.schedule.scheduler import Scheduler, next_fire, parse_until

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
