"""Schedules: cron-timed real runs (a tiny scenario against a local OIP v2 server), the run
lock held by another real process, history lines, the exporters, and plan errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from tiny_target import write_scenario

from harness.core.fault import UserError
from harness.engine.load.reference_server import ReferenceServer, Reply
from harness.workflows.gameday import PlanError
from harness.workflows.schedule import Scheduler, export_plan, load_schedule, next_fire, parse_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server():
    with ReferenceServer(lambda n: Reply(delay=0.002)) as srv:
        yield srv


def _plan(folder: Path, body: str) -> Path:
    path = folder / "schedule.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def _history(out: Path, name: str) -> list[dict]:
    return [
        json.loads(line)
        for line in (out / "schedule" / name / "history.jsonl").read_text().splitlines()
    ]


def test_cron_loop_runs_real_jobs_one_at_a_time_and_keeps_history(tmp_path: Path, server) -> None:
    write_scenario(tmp_path, "steady", server.url, duration="1.5s")
    plan = _plan(
        tmp_path,
        "name: every-few-seconds\njobs:\n"
        "  - {name: steady, cron: '* * * * * */3', scenario: steady.yaml}\n",
    )
    out = tmp_path / "reports"
    sched = Scheduler(load_schedule(plan), output_dir=out, console=Console(quiet=True))
    entries = sched.loop(max_runs=2, until=time.time() + 120)
    assert [e["status"] for e in entries] == ["passed", "passed"], entries
    first, second = entries
    assert first["ended"] <= second["started"]  # never overlapping
    for e in entries:
        assert e["started"] >= e["planned"] - 0.05
        assert int(e["planned"]) % 3 == 0  # fired on the cron's seconds
        assert (Path(e["run_dir"]) / "result.json").is_file()
    assert [h["status"] for h in _history(out, "every-few-seconds")] == ["passed", "passed"]


def test_a_run_holding_the_lock_makes_a_colliding_job_skip(tmp_path: Path, server) -> None:
    write_scenario(tmp_path, "steady", server.url)
    plan = _plan(
        tmp_path,
        "name: collide\njobs:\n  - {name: steady, cron: '0 3 * * *', scenario: steady.yaml}\n",
    )
    out = tmp_path / "reports"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from harness.workflows.schedule import RunLock\n"
                "lock = RunLock(Path(sys.argv[1])); assert lock.acquire(); print('held', flush=True); time.sleep(60)"
            ),
            str(out / "schedule" / ".run.lock"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.run(
            check=False,
            args=[sys.executable, "-m", "harness.cli", "schedule", str(plan), "--job", "steady"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        (entry,) = _history(out, "collide")
        assert entry["status"] == "skipped" and f"pid {holder.pid}" in entry["message"]
    finally:
        holder.kill()
        holder.wait()
    # the holder died: the kernel dropped its lock, so the next attempt takes it
    sched = Scheduler(
        load_schedule(plan), output_dir=out, lock_timeout=5, console=Console(quiet=True)
    )
    assert sched.lock.acquire(timeout=5)
    sched.lock.release()


def test_exporters_print_crontab_cronjob_and_workflow(tmp_path: Path, server) -> None:
    write_scenario(tmp_path, "steady", server.url)
    plan = _plan(
        tmp_path,
        "name: nightly\njobs:\n"
        "  - {name: latency, cron: '0 3 * * *', scenario: steady.yaml, quick: true}\n"
        "  - {name: weekly, cron: '30 4 * * 1', scenario: steady.yaml}\n",
    )
    loaded = load_schedule(plan)
    cron = export_plan(loaded, "crontab", "schedule.yaml")
    assert "0 3 * * * cd " in cron and "aftershock schedule schedule.yaml --job latency" in cron
    docs = list(yaml.safe_load_all(export_plan(loaded, "kubernetes", "schedule.yaml")))
    assert [d["kind"] for d in docs] == ["CronJob", "CronJob"]
    assert (
        docs[1]["spec"]["schedule"] == "30 4 * * 1"
        and docs[1]["spec"]["concurrencyPolicy"] == "Forbid"
    )
    assert docs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "schedule",
        "schedule.yaml",
        "--job",
        "latency",
    ]
    wf = yaml.safe_load(export_plan(loaded, "github", "schedule.yaml"))
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert [c["cron"] for c in on["schedule"]] == ["0 3 * * *", "30 4 * * 1"]
    runs = [s for s in wf["jobs"]["resilience"]["steps"] if "--job" in s.get("run", "")]
    assert "github.event.schedule == '30 4 * * 1'" in runs[1]["if"]
    proc = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "harness.cli", "schedule", str(plan), "--export", "crontab"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "--job weekly" in proc.stdout


def test_seconds_fields_cannot_be_exported_and_loops_must_be_bounded(
    tmp_path: Path, server
) -> None:
    write_scenario(tmp_path, "steady", server.url)
    plan = _plan(
        tmp_path, "name: s\njobs:\n  - {name: fast, cron: '* * * * * */5', scenario: steady.yaml}\n"
    )
    with pytest.raises(UserError, match="seconds field"):
        export_plan(load_schedule(plan), "github", "p")
    with pytest.raises(UserError, match="--max-runs"):
        Scheduler(load_schedule(plan), output_dir=tmp_path).loop()
    assert next_fire(load_schedule(plan).plan.jobs[0], 1_700_000_001.0) == 1_700_000_005.0
    assert abs(parse_until("90s") - time.time() - 90) < 2
    assert parse_until("2030-01-01T00:00:00") == 1893456000.0
    with pytest.raises(UserError, match="--until"):
        parse_until("tomorrow-ish")


def test_plan_errors_have_file_line_column(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path, "name: s\njobs:\n  - name: a\n    cron: '61 * * * *'\n    scenario: nope.yaml\n"
    )
    with pytest.raises(PlanError) as exc:
        load_schedule(plan)
    assert f"{plan}:4:11: jobs[0].cron: invalid cron expression '61 * * * *'" in str(exc.value)
    plan = _plan(
        tmp_path, "name: s\njobs:\n  - name: a\n    cron: '0 1 * * *'\n    scenario: nope.yaml\n"
    )
    with pytest.raises(
        PlanError, match=r":5:15: jobs\[0\].scenario: scenario file 'nope.yaml' not found"
    ):
        load_schedule(plan)
    proc = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "harness.cli", "schedule", str(plan)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        proc.returncode == 2
        and "Traceback" not in proc.stderr
        and "jobs[0].scenario" in proc.stderr
    )
