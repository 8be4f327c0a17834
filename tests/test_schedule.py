"""Schedules: cron-timed real runs (a tiny scenario against a local OIP v2 server), the run
lock held by another real process, history lines, the exporters, and plan errors."""

from __future__ import annotations

import json
import os
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
    assert "0 3 * * * cd " in cron and f"/aftershock schedule {plan} --job latency" in cron
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


def test_exported_crontab_line_runs_as_cron_runs_it(tmp_path: Path, server) -> None:
    """cron starts `/bin/sh -c LINE` from $HOME with PATH=/usr/bin:/bin and no venv: the
    exported line names aftershock by its absolute path and creates the log's folder."""
    project = tmp_path / "project"
    project.mkdir()
    write_scenario(project, "steady", server.url, duration="1s")
    _plan(project, "name: nightly\noutput: {dir: out/reports}\njobs:\n"
          "  - {name: steady, cron: '0 3 * * *', scenario: steady.yaml}\n")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "schedule", "schedule.yaml", "--export", "crontab"],
                          cwd=project, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("0 3 * * * "))
    command = line.removeprefix("0 3 * * * ")
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}
    env["PYTHONPATH"] = str(ROOT)  # how this checkout is installed for the tests; cron adds nothing else
    ran = subprocess.run(["/bin/sh", "-c", command], cwd=home, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert ran.returncode == 0, (command, ran.stdout, ran.stderr)
    log = project / "out" / "reports" / "schedule" / "cron.log"
    assert log.is_file()
    assert [h["status"] for h in _history(project / "out" / "reports", "nightly")] == ["passed"]


def test_exported_workflow_installs_the_extras_the_scenarios_need(tmp_path: Path, server) -> None:
    write_scenario(tmp_path, "steady", server.url)
    cases = {"steady.yaml": "pip install .",
             str(ROOT / "scenarios" / "feature-store-latency.yaml"): "pip install '.[ml]'",
             str(ROOT / "scenarios" / "container-pause.yaml"): "pip install '.[docker,ml]'"}
    for scenario, install in cases.items():
        plan = _plan(tmp_path, f"name: n\njobs:\n  - {{name: j, cron: '0 3 * * *', scenario: {scenario}}}\n")
        wf = yaml.safe_load(export_plan(load_schedule(plan), "github", plan))
        steps = [s["run"] for s in wf["jobs"]["resilience"]["steps"] if "run" in s]
        assert steps[0] == install, (scenario, steps)


def test_a_scheduled_job_in_github_actions_annotates_and_summarises(tmp_path: Path, server) -> None:
    """`schedule PLAN --job NAME` is what the exported workflow runs: it shows a CI job what `run` shows."""
    scenario = write_scenario(tmp_path, "too-strict", server.url, p95_limit="1ms", duration="1s")
    plan = _plan(tmp_path, "name: n\noutput: {dir: out}\njobs:\n"
                 "  - {name: strict, cron: '0 3 * * *', scenario: too-strict.yaml}\n")
    step = tmp_path / "step.md"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(tmp_path), GITHUB_STEP_SUMMARY=str(step))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "schedule", str(plan), "--job", "strict"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(i for i, text in enumerate(scenario.read_text().splitlines(), 1) if "expect: p95(latency) < 1ms" in text)
    assert f"::error file=too-strict.yaml,line={line},title=too-strict%3A SLO 'fast enough' failed::" in proc.stdout
    assert "## aftershock: too-strict" in step.read_text()
