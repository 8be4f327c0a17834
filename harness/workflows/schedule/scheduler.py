"""Runs a schedule's jobs when their cron expressions fire, one at a time, keeping a history.

The loop sleeps until the earliest next fire time, runs that job under the run lock, and
computes the next fire times from the moment the run ended: a fire missed while another
run went on is skipped, not queued (Kubernetes' `concurrencyPolicy: Forbid`). Every
attempt, run or skipped, is one line of `<reports>/schedule/<plan>/history.jsonl`.
Every loop is bounded by `max_runs` and/or `until`.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from croniter import croniter
from rich.console import Console

from harness.engine.console import make_console
from harness.core.fault import UserError
from harness.workflows.schedule.lock import RunLock
from harness.workflows.schedule.plan import Job, LoadedSchedule
from harness.core.units import parse_duration


def parse_until(text: str) -> float:
    """`--until`: a duration from now (`90s`, `2h`) or an ISO 8601 time (UTC unless it says)."""
    try:
        return time.time() + parse_duration(text)
    except (ValueError, TypeError):
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--until {text!r}: write a duration (30m, 2h) or an ISO time (2025-01-31T18:00)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def next_fire(job: Job, after: float) -> float:
    return croniter(job.cron, datetime.fromtimestamp(after, UTC)).get_next(float)


class Scheduler:
    def __init__(
        self,
        loaded: LoadedSchedule,
        *,
        lock_timeout: float = 0.0,
        output_dir: Path | None = None,
        console: Console | None = None,
    ) -> None:
        self.loaded = loaded
        self.out_root = output_dir or Path(loaded.plan.output.dir)
        self.lock = RunLock(self.out_root / "schedule" / ".run.lock")
        self.history = self.out_root / "schedule" / loaded.plan.name / "history.jsonl"
        self.lock_timeout = lock_timeout
        self.console = console or make_console(stderr=True)

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _run(self, job: Job, file: Path) -> dict[str, Any]:
        """Run one job for real: a scenario through the runner, or an unattended game day."""
        if job.scenario:
            from harness.engine.runner import Runner, RunOptions
            from harness.engine.scenario.loader import load_scenario

            res = Runner(
                load_scenario(file), RunOptions(quick=job.quick, output_dir=self.out_root)
            ).run()
            return {
                "status": res.status,
                "exit_code": res.exit_code,
                "run_dir": str(res.run_dir),
                "message": res.message,
            }
        from harness.workflows.gameday import GameDay, load_plan

        outcome = GameDay(
            load_plan(file),
            unattended=True,
            quick=job.quick,
            output_dir=self.out_root,
            console=self.console,
        ).run()
        status = "passed" if outcome.exit_code == 0 else "failed"
        return {
            "status": status,
            "exit_code": outcome.exit_code,
            "run_dir": str(outcome.report_dir),
            "message": "",
        }

    def _record(self, entry: dict[str, Any]) -> None:
        self.history.parent.mkdir(parents=True, exist_ok=True)
        with self.history.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def run_job_now(self, name_or_job: str | Job, planned: float | None = None) -> dict[str, Any]:
        """Run one job now under the lock (or record it skipped if the lock stays busy)."""
        job = self.loaded.job(name_or_job) if isinstance(name_or_job, str) else name_or_job
        entry: dict[str, Any] = {
            "job": job.name,
            "kind": "scenario" if job.scenario else "gameday",
            "file": str(self.loaded.file_of(job)),
            "planned": planned,
            "started": time.time(),
        }
        if not self.lock.acquire(self.lock_timeout):
            entry.update(
                status="skipped",
                ended=time.time(),
                message=f"another run holds {self.lock.path} (pid {self.lock.holder() or '?'})",
            )
            self._say(f"{job.name}: skipped — {entry['message']}")
            self._record(entry)
            return entry
        try:
            self._say(f"{job.name}: running {entry['file']}")
            try:
                entry.update(self._run(job, self.loaded.file_of(job)))
            except UserError as exc:  # the file changed since the plan was loaded
                entry.update(status="error", exit_code=2, message=str(exc))
        finally:
            self.lock.release()
        entry["ended"] = time.time()
        self._say(f"{job.name}: {entry['status']} (exit {entry.get('exit_code')})")
        self._record(entry)
        return entry

    def loop(self, max_runs: int | None = None, until: float | None = None) -> list[dict[str, Any]]:
        """Run jobs as they fall due until `max_runs` attempts or the `until` time (one is required)."""
        if max_runs is None and until is None:
            raise UserError(
                "say when to stop: --max-runs N and/or --until TIME (e.g. --until 24h); "
                "or export the schedule to cron, Kubernetes or GitHub Actions with --export"
            )
        done: list[dict[str, Any]] = []
        now = time.time()
        due = {j.name: next_fire(j, now) for j in self.loaded.plan.jobs}
        jobs = {j.name: j for j in self.loaded.plan.jobs}
        while max_runs is None or len(done) < max_runs:
            name = min(due, key=lambda n: due[n])
            when = due[name]
            if until is not None and when > until:
                self._sleep_until(until)
                break
            self._say(f"next: {name} at {datetime.fromtimestamp(when, UTC).isoformat()}")
            self._sleep_until(when)
            done.append(self.run_job_now(jobs[name], planned=when))
            now = time.time()
            due = {
                n: (next_fire(jobs[n], now) if n == name or due[n] < now else due[n]) for n in due
            }
        return done

    @staticmethod
    def _sleep_until(t: float) -> None:
        while (left := t - time.time()) > 0:
            time.sleep(min(left, 1.0))
