"""The schedule as someone else's scheduler sees it: a crontab, Kubernetes CronJobs, or a
GitHub Actions workflow. Each entry calls `aftershock schedule PLAN --job NAME`, which takes
the same run lock, so runs still never overlap."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import yaml

from harness.core.fault import UserError
from harness.engine.scenario.needs import scenario_extras
from harness.workflows.schedule.plan import LoadedSchedule

FORMATS = ("crontab", "kubernetes", "github")


def _check_minutes(loaded: LoadedSchedule, fmt: str) -> None:
    bad = [j.name for j in loaded.plan.jobs if j.has_seconds]
    if bad:
        raise UserError(
            f"--export {fmt}: jobs {', '.join(bad)} use a seconds field; "
            f"{fmt} schedules count in minutes: use five cron fields"
        )


def _command(plan_arg: str, job: str, program: str = "aftershock") -> list[str]:
    return [program, "schedule", plan_arg, "--job", job]


def installed_program() -> str:
    """The absolute path of this installation's `aftershock` (cron's PATH has no venv on it)."""
    beside = Path(sys.executable).parent / "aftershock"  # the venv's bin, not resolved past its symlink
    if beside.is_file():
        return str(beside)
    found = shutil.which("aftershock")
    return str(Path(found).absolute()) if found else str(beside)


def crontab(loaded: LoadedSchedule, plan_arg: str) -> str:
    cwd = Path.cwd()
    lines = [
        f"# aftershock schedule {loaded.plan.name}; the plan's times are UTC (CRON_TZ: cronie, systemd-cron)",
        "CRON_TZ=UTC",
    ]
    plan = str(loaded.path.absolute())  # the file as loaded, wherever cron starts
    log_dir = Path(loaded.plan.output.dir, "schedule").absolute()
    for j in loaded.plan.jobs:
        cmd = " ".join(shlex.quote(a) for a in _command(plan, j.name, installed_program()))
        log = shlex.quote(str(log_dir / "cron.log"))
        # cron runs /bin/sh with PATH=/usr/bin:/bin from $HOME: absolute paths, and the log's folder made first
        lines.append(f"{j.cron} cd {shlex.quote(str(cwd))} && mkdir -p {shlex.quote(str(log_dir))} && {cmd} >> {log} 2>&1")
    return "\n".join(lines) + "\n"


def kubernetes(loaded: LoadedSchedule, plan_arg: str, image: str = "aftershock:latest") -> str:
    docs = []
    for j in loaded.plan.jobs:
        docs.append(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {
                    "name": f"aftershock-{j.name}".lower()[:52],
                    "labels": {
                        "app.kubernetes.io/name": "aftershock",
                        "aftershock/schedule": loaded.plan.name,
                    },
                },
                "spec": {
                    "schedule": j.cron,
                    "timeZone": "Etc/UTC",
                    "concurrencyPolicy": "Forbid",
                    "successfulJobsHistoryLimit": 5,
                    "failedJobsHistoryLimit": 5,
                    "jobTemplate": {
                        "spec": {
                            "backoffLimit": 0,
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [
                                        {
                                            "name": "aftershock",
                                            "image": image,
                                            "args": _command(plan_arg, j.name)[1:],
                                            "volumeMounts": [
                                                {"name": "reports", "mountPath": "/work/reports"}
                                            ],
                                            "workingDir": "/work",
                                        }
                                    ],
                                    "volumes": [
                                        {
                                            "name": "reports",
                                            "persistentVolumeClaim": {
                                                "claimName": "aftershock-reports"
                                            },
                                        }
                                    ],
                                }
                            },
                        }
                    },
                },
            }
        )
    head = (
        "# Kubernetes CronJobs for aftershock schedule " + loaded.plan.name + ".\n"
        "# Set the image to one with aftershock and your scenarios; reports persist on the PVC.\n"
    )
    return head + yaml.safe_dump_all(docs, sort_keys=False, width=1000)


def schedule_extras(loaded: LoadedSchedule) -> set[str]:
    """The extras every scenario and game day of the plan needs together."""
    from harness.workflows.gameday.plan import load_plan
    from harness.engine.scenario.loader import load_scenario

    need: set[str] = set()
    for job in loaded.plan.jobs:
        file = loaded.file_of(job)
        for s in [load_scenario(file)] if job.scenario else load_plan(file).scenarios.values():
            need |= scenario_extras(s)
    return need


def _install_target(loaded: LoadedSchedule) -> str:
    """`.` plus the extras the plan's scenarios need: `.[docker,ml]`."""
    extras = sorted(schedule_extras(loaded))
    return f".[{','.join(extras)}]" if extras else "."


def github(loaded: LoadedSchedule, plan_arg: str) -> str:
    crons = [j.cron for j in loaded.plan.jobs]
    steps = [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}},
        {"run": f"pip install {shlex.quote(_install_target(loaded))}"},
    ]
    for j in loaded.plan.jobs:
        steps.append(
            {
                "name": j.name,
                "if": f"github.event_name == 'workflow_dispatch' || github.event.schedule == '{j.cron}'",
                "run": " ".join(shlex.quote(a) for a in _command(plan_arg, j.name)),
            }
        )
    steps.append(
        {
            "uses": "actions/upload-artifact@v4",
            "if": "always()",
            "with": {
                "name": f"aftershock-{loaded.plan.name}-${{{{ github.run_id }}}}",
                "path": loaded.plan.output.dir,
            },
        }
    )
    workflow = {
        "name": f"aftershock {loaded.plan.name}",
        "on": {"schedule": [{"cron": c} for c in dict.fromkeys(crons)], "workflow_dispatch": None},
        "concurrency": {"group": f"aftershock-{loaded.plan.name}", "cancel-in-progress": False},
        "jobs": {
            "resilience": {"runs-on": "ubuntu-latest", "timeout-minutes": 120, "steps": steps}
        },
    }
    return "# GitHub Actions schedules run in UTC.\n" + yaml.safe_dump(
        workflow, sort_keys=False, width=1000
    )


def export_plan(loaded: LoadedSchedule, fmt: str, plan_arg: str | Path) -> str:
    if fmt not in FORMATS:
        raise UserError(f"--export {fmt!r}: choose one of {', '.join(FORMATS)}")
    _check_minutes(loaded, fmt)
    arg = str(plan_arg)
    return {"crontab": crontab, "kubernetes": kubernetes, "github": github}[fmt](loaded, arg)
