"""Infrastructure scenarios end to end, through the real CLI in a child process.

- the shipped dependency-crash and container-pause scenarios (and their fragile twins)
  against the real demo: resilient passes (exit 0), fragile fails an SLO (exit 1);
- every infrastructure fault family is reverted when the harness gets SIGINT mid-fault,
  and nothing the run started survives;
- a container dependency left behind by a SIGKILLed harness is removed by
  `aftershock cleanup`.

Container cases need a real dockerd and the test image (`.ci/docker-up.sh`); they skip,
saying so, where there is none.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tiny_target import write_dataset

from faults.resource import marked_pids
from harness.engine.ledger import read_ledger

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "aftershock-busybox:latest"


def aftershock(*args: str, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def run_dir_of(output: Path, name: str) -> Path:
    (d,) = sorted((output / name).iterdir())
    return d


def events_of(journal: Path) -> list[dict[str, Any]]:
    out = []
    for line in journal.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line being written right now
    return out


def wait_for_events(journal: Path, done: Callable[[list[dict[str, Any]]], bool], timeout: float,
                    what: str) -> list[dict[str, Any]]:
    """Wait until `done(events)` holds for the journal's events; returns them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists():
            events = events_of(journal)
            if done(events):
                return events
        time.sleep(0.2)
    raise AssertionError(f"{what}: not in {journal} within {timeout}s")


def injected(events: list[dict[str, Any]]) -> int:
    return sum(e["event"] == "fault.injected" for e in events)


def started_pids(events: list[dict[str, Any]]) -> list[int]:
    """Every process the run started (restarts included) and every container's main process."""
    return ([e["pid"] for e in events if e["event"] == "process.started"]
            + [e["host_pid"] for e in events if e["event"] == "container.started" and e.get("host_pid")])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is not alive


def state_of(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def wait_until(cond, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def docker_or_reason() -> tuple[Any, str]:
    """(a Docker client, "") where a daemon and the test image are there, else (None, why not)."""
    try:
        import docker
    except ImportError:
        return None, "the `docker` package is not installed (pip install docker)"
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        return None, f"no Docker daemon reachable ({exc}); run .ci/docker-up.sh first"
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return None, f"test image {IMAGE} is missing; run .ci/docker-up.sh to build it"
    return client, ""


@pytest.fixture(scope="module")
def docker_client():
    client, why = docker_or_reason()
    if client is None:
        pytest.skip(why)
    return client


def containers_of_run(client: Any, run_id: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"aftershock.run={run_id}"})


# --- the shipped scenarios ------------------------------------------------------------


@pytest.mark.parametrize("name, code", [
    ("dependency-crash", 0), ("dependency-crash-fragile", 1),
    ("container-pause", 0), ("container-pause-fragile", 1),
])
def test_shipped_scenario(tmp_path: Path, request: pytest.FixtureRequest, name: str, code: int) -> None:
    client = request.getfixturevalue("docker_client") if name.startswith("container") else None
    proc = aftershock("run", str(ROOT / "scenarios" / f"{name}.yaml"), "--quick", "-o", str(tmp_path))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == code, out
    run = run_dir_of(tmp_path, name)
    result = json.loads((run / "result.json").read_text())
    verdicts = {v["expect"].split(" during ")[0]: v for v in result["slos"]}
    availability = verdicts["availability >= 99%"]
    if code == 0:
        assert all(v["passed"] is True for v in result["slos"]), result["slos"]
        assert availability["unit"] == "fraction" and availability["measured"] >= 0.99
    else:  # the fragile twin cannot answer without its store
        assert availability["passed"] is False and availability["measured"] < 0.5, availability
    events = events_of(run / "journal.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds.index("fault.injected") < kinds.index("fault.reverted") < kinds.index("run.ended")
    if client is not None:  # the store ran in a container, was paused, and is gone now
        (started,) = [e for e in events if e["event"] == "container.started"]
        paused = [e for e in events if e["event"] == "fault.action" and e["action"] == "pause"]
        assert [e["id"] for e in paused] == [started["id"][:12]]
        assert containers_of_run(client, run.name) == []
    else:  # the store process was killed and a new one started `restart_after` later
        kill = next(e for e in events if e["event"] == "fault.action" and e["action"] == "signal")
        restart = next(e for e in events if e["event"] == "fault.action" and e["action"] == "start")
        assert restart["reason"] == "restart_after" and restart["pid"] != kill["pid"]
        assert 1.5 <= restart["t"] - kill["t"] <= 10
    assert [p for p in started_pids(events) if alive(p)] == []


def test_container_scenario_without_docker_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-dockerd.sock"}
    proc = aftershock("run", str(ROOT / "scenarios" / "container-pause.yaml"), "--quick", "-o", str(tmp_path), env=env)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "no Docker daemon reachable" in out and "Traceback" not in out


# --- every family reverted after SIGINT -------------------------------------------------

SLEEPER = '["{python}", "-c", "import time; time.sleep(600)"]'
FAMILIES = ["process.pause", "process.kill", "container.pause", "resource.cpu", "resource.memory",
            "resource.disk_fill", "gpu.preemption"]


def write_family_scenario(folder: Path, name: str, container_name: str | None) -> Path:
    """A small run that injects one fault of every family at once, held for 100 s.

    The target is the fast reference server (starts in a second); the process faults
    act on sleeper jobs; the container faults on a container dependency (busybox + the
    host's Python serving a folder).
    """
    write_dataset(folder)
    (folder / "fill").mkdir()
    store = f"""\
dependencies:
  store:
    container:
      image: {IMAGE}
      name: {container_name}
      host_python: true
      command: ["{{python}}", -m, http.server, "{{port}}", --bind, 127.0.0.1, --directory, /tmp]
      ready: {{path: /}}
""" if container_name else ""
    pause = f"""\
    - {{name: box-freeze, type: container.pause, container: {container_name}, at: 0s, duration: 100s}}
""" if container_name else ""
    path = folder / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
target:
  start:
    command: ["{{python}}", -m, harness.engine.load.reference_server, "{{port}}"]
  model: m
{store}jobs:
  frozen: {{command: {SLEEPER}}}
  crashed: {{command: {SLEEPER}}}
  preempted: {{command: {SLEEPER}}}
load: {{users: 2, duration: 120s, window: 0.5s, data: {{dataset: rows.npz}}}}
timeline:
  faults:
    - {{name: freeze, type: process.pause, process: frozen, at: 0s, duration: 100s}}
    - {{name: crash, type: process.kill, process: crashed, restart_after: 1s, at: 0s, duration: 100s}}
{pause}    - {{name: busy, type: resource.cpu, cores: 1, load: 20%, at: 0s, duration: 100s}}
    - {{name: hog, type: resource.memory, size: 16MiB, at: 0s, duration: 100s}}
    - {{name: full, type: resource.disk_fill, directory: {folder / "fill"}, size: 1MiB, at: 0s, duration: 100s}}
    - {{name: spot, type: gpu.preemption, process: preempted, notice: sigterm, grace: 1s, reschedule_after: null,
        at: 0s, duration: 100s}}
slos:
  - name: answers
    expect: availability >= 99%
""", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every family at once, check each is in effect, SIGINT the harness; facts before/after."""
    folder = tmp_path_factory.mktemp("families")
    client, why = docker_or_reason()
    container_name = f"aftershock-test-{uuid.uuid4().hex[:10]}" if client else None
    scenario = write_family_scenario(folder, "every-family", container_name)
    out_dir = folder / "out"
    proc = aftershock("run", str(scenario), "-o", str(out_dir))
    try:
        assert wait_until(lambda: (out_dir / "every-family").exists(), timeout=120), proc.poll()
        journal = run_dir_of(out_dir, "every-family") / "journal.jsonl"
        faults = len(FAMILIES) if client else len(FAMILIES) - 1
        events = wait_for_events(
            journal, lambda ev: injected(ev) == faults and any(e.get("reason") == "restart_after" for e in ev),
            timeout=180, what=f"{faults} faults injected and the killed job restarted")
        (ledger_path,) = (out_dir / ".ledger").glob("*.jsonl")
        records = {e["id"].split(":")[-1]: e["record"] for e in read_ledger(ledger_path).faults}
        first = {e["name"]: e["pid"] for e in reversed(events) if e["event"] == "process.started"}
        restarted = next(e["pid"] for e in events if e["event"] == "fault.action" and e.get("reason") == "restart_after")
        before = {
            "frozen_state": state_of(first["frozen"]),
            "crashed_first_alive": alive(first["crashed"]),
            "crashed_restart_alive": alive(restarted),
            "preempted_alive": not wait_until(lambda: not alive(first["preempted"]), timeout=5),
            "cpu_burners": marked_pids(records["busy"]["marker"]),
            "memory_holders": marked_pids(records["hog"]["marker"]),
            "fill_exists": Path(records["full"]["path"]).exists(),
            "container_status": client.containers.get(container_name).status if client else None,
        }
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    events = events_of(journal)
    pids = started_pids(events)
    wait_until(lambda: not any(alive(p) for p in pids), timeout=10)
    return {
        "code": proc.returncode, "out": out, "events": events, "records": records, "before": before,
        "first": first, "restarted": restarted, "ledger": read_ledger(ledger_path),
        "survivors": [p for p in pids if alive(p)],
        "container_gone": client and container_name not in {c.name for c in client.containers.list(all=True)},
        "docker_skip": why,
    }


def actions(run: dict[str, Any], fault: str) -> list[dict[str, Any]]:
    return [e for e in run["events"] if e["event"] == "fault.action" and e["fault"] == fault]


def index_of(run: dict[str, Any], pred) -> int:
    return next(i for i, e in enumerate(run["events"]) if pred(e))


@pytest.mark.parametrize("family", FAMILIES)
def test_sigint_mid_fault_reverts_every_family(interrupted_run: dict[str, Any], family: str) -> None:
    run = interrupted_run
    if family == "container.pause" and run["docker_skip"]:
        pytest.skip(run["docker_skip"])
    assert run["code"] == 130, run["out"]
    assert "interrupted by SIGINT" in run["out"]
    before = run["before"]
    name = {"process.pause": "freeze", "process.kill": "crash", "container.pause": "box-freeze",
            "resource.cpu": "busy", "resource.memory": "hog", "resource.disk_fill": "full",
            "gpu.preemption": "spot"}[family]
    reverted = [e for e in run["events"] if e["event"] == "fault.reverted" and e["fault"] == name]
    assert len(reverted) == 1 and reverted[0]["early"] is True
    assert not run["ledger"].faults and not run["ledger"].containers and run["ledger"].closed
    stopped = lambda proc: index_of(run, lambda e: e["event"] == "process.stopped" and e["name"] == proc)

    if family == "process.pause":
        assert before["frozen_state"] == "T", "the job was stopped (SIGSTOP) while the fault held"
        cont = index_of(run, lambda e: e["event"] == "fault.action" and e["fault"] == name
                        and e.get("signal") == "SIGCONT")
        assert cont < stopped("frozen"), "continued by the revert before the run stopped it"
    elif family == "process.kill":
        assert not before["crashed_first_alive"] and before["crashed_restart_alive"]
        assert run["restarted"] != run["first"]["crashed"]
    elif family == "container.pause":
        assert before["container_status"] == "paused"
        undo = index_of(run, lambda e: e["event"] == "fault.action" and e["fault"] == name and e["action"] == "undo")
        assert "unpaused" in run["events"][undo]["done"]
        assert undo < index_of(run, lambda e: e["event"] == "container.removed")
        assert run["container_gone"] is True
    elif family in ("resource.cpu", "resource.memory"):
        marker = run["records"][name]["marker"]
        assert before["cpu_burners" if family == "resource.cpu" else "memory_holders"], "the pressure child ran"
        assert marked_pids(marker) == [], "no process carries the fault's marker any more"
    elif family == "resource.disk_fill":
        assert before["fill_exists"]
        assert not Path(run["records"][name]["path"]).exists()
    elif family == "gpu.preemption":
        assert not before["preempted_alive"], "the job was preempted (SIGTERM) while the fault held"
        back = index_of(run, lambda e: e["event"] == "fault.action" and e["fault"] == name and e["action"] == "start")
        assert back < stopped("preempted"), "rescheduled by the revert, then stopped with the run"
    assert run["survivors"] == [], "a process the run started is still alive"


# --- SIGKILL, then `aftershock cleanup` ------------------------------------------------


def test_sigkill_then_cleanup_removes_the_container(tmp_path: Path, docker_client: Any) -> None:
    from docker.errors import NotFound

    write_dataset(tmp_path)
    container_name = f"aftershock-test-{uuid.uuid4().hex[:10]}"
    scenario = tmp_path / "killed.yaml"
    scenario.write_text(f"""\
name: killed
target:
  start: {{command: ["{{python}}", -m, harness.engine.load.reference_server, "{{port}}"]}}
  model: m
dependencies:
  store:
    container:
      image: {IMAGE}
      name: {container_name}
      host_python: true
      command: ["{{python}}", -m, http.server, "{{port}}", --bind, 127.0.0.1, --directory, /tmp]
      ready: {{path: /}}
load: {{users: 2, duration: 120s, window: 0.5s, data: {{dataset: rows.npz}}}}
timeline:
  faults:
    - {{name: box-freeze, type: container.pause, container: {container_name}, at: 0s, duration: 100s}}
""", encoding="utf-8")
    proc = aftershock("run", str(scenario), "-o", str(tmp_path / "out"))
    try:
        assert wait_until(lambda: (tmp_path / "out" / "killed").exists(), timeout=120), proc.poll()
        journal = run_dir_of(tmp_path / "out", "killed") / "journal.jsonl"
        events = wait_for_events(journal, lambda ev: injected(ev) == 1, timeout=120, what="the pause injected")
        proc.kill()
        proc.communicate(timeout=30)
        assert docker_client.containers.get(container_name).status == "paused", "SIGKILL leaves it behind"
        pids = started_pids(events)
        assert any(alive(p) for p in pids), "SIGKILL leaves the target behind"
        clean = aftershock("cleanup", "--reports", str(tmp_path / "out"))
        out, _ = clean.communicate(timeout=120)
        assert clean.returncode == 0, out
        assert f"container {container_name} (store): removed" in out, out
        with pytest.raises(NotFound):
            docker_client.containers.get(container_name)
        assert wait_until(lambda: not any(alive(p) for p in pids), timeout=10)
        again = aftershock("cleanup", "--reports", str(tmp_path / "out"))
        assert "nothing to clean up" in again.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        try:
            docker_client.containers.get(container_name).remove(force=True)
        except NotFound:
            pass


# --- a server whose worker runs in its own session (as BentoML's do) --------------------

OWN_SESSION = ROOT / "tests" / "servers" / "own_session.py"


def write_own_session_scenario(folder: Path, name: str, load: str, faults: str,
                               expect: str = "availability >= 99% during crash") -> Path:
    write_dataset(folder)
    path = folder / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
target:
  start:
    command: ["{{python}}", {OWN_SESSION}, "{{port}}"]
  model: m
{faults}
load: {{users: 2, {load}, window: 0.5s, data: {{dataset: rows.npz}}}}
slos:
  - name: answers while crashed
    expect: {expect}
""", encoding="utf-8")
    return path


def workers_in(log: Path) -> list[int]:
    """Pids of the workers the arbiter started (it logs `worker PID started`)."""
    return [int(line.split()[1]) for line in log.read_text().splitlines() if line.endswith(" started")]


def test_kill_of_an_own_session_server_is_seen_by_the_run(tmp_path: Path) -> None:
    scenario = write_own_session_scenario(tmp_path, "own-session", "duration: 10s", """\
timeline:
  baseline: 2s
  faults:
    - {name: crash, type: process.kill, process: target, at: 2s, duration: 4s}""")
    proc = aftershock("run", str(scenario), "-o", str(tmp_path / "out"))
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1, out  # the SLO fails: the crash was real
    run = run_dir_of(tmp_path / "out", "own-session")
    (slo,) = json.loads((run / "result.json").read_text())["slos"]
    assert slo["passed"] is False and slo["measured"] < 0.5, slo
    events = events_of(run / "journal.jsonl")
    verified = [e for e in events if e["event"] == "fault.action" and e["action"] == "verified"]
    assert [e["effect"] for e in verified] == ["gone", "ready"]
    workers = workers_in(run / "logs" / "target.log")
    assert len(workers) == 2 and workers[0] in verified[0]["pids"]
    assert [p for p in started_pids(events) + workers if alive(p)] == [], "nothing survives the run"


def test_sigkill_then_cleanup_kills_the_worker_in_its_own_session(tmp_path: Path) -> None:
    scenario = write_own_session_scenario(tmp_path, "own-session-killed", "duration: 120s", "",
                                          expect="availability >= 99%")
    proc = aftershock("run", str(scenario), "-o", str(tmp_path / "out"))
    try:
        assert wait_until(lambda: (tmp_path / "out" / "own-session-killed").exists(), timeout=120), proc.poll()
        run = run_dir_of(tmp_path / "out", "own-session-killed")
        wait_for_events(run / "journal.jsonl", lambda ev: any(e["event"] == "phase" for e in ev),
                        timeout=120, what="the load running")
        (worker,) = workers_in(run / "logs" / "target.log")
        proc.kill()
        proc.communicate(timeout=30)
        assert alive(worker), "SIGKILL of the harness leaves the server behind"
        clean = aftershock("cleanup", "--reports", str(tmp_path / "out"))
        out, _ = clean.communicate(timeout=120)
        assert clean.returncode == 0 and "process target" in out, out
        assert wait_until(lambda: not alive(worker), timeout=10), "cleanup found the worker in its own session"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_fault_that_cannot_act_fails_the_run_loudly(tmp_path: Path) -> None:
    """A job that ignores SIGTERM, `process.kill` with SIGTERM: the kill takes no effect."""
    write_dataset(tmp_path)
    scenario = tmp_path / "deaf.yaml"
    scenario.write_text("""\
name: deaf
target:
  start: {command: ["{python}", -m, harness.engine.load.reference_server, "{port}"]}
  model: m
jobs:
  deaf: {command: [sh, -c, "trap '' TERM; sleep 600"]}
load: {users: 1, duration: 8s, window: 0.5s, data: {dataset: rows.npz}}
timeline:
  faults:
    - {name: crash, type: process.kill, process: deaf, signal: SIGTERM, exit_timeout: 1s, at: 1s, duration: 3s}
slos:
  - name: answers
    expect: availability >= 99%
""", encoding="utf-8")
    proc = aftershock("run", str(scenario), "-o", str(tmp_path / "out"))
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 4, out
    said = "a fault did not take effect: process.kill crash: deaf is still running 1s after SIGTERM"
    assert said in " ".join(out.split()) and "internal error" not in out, out  # the console wraps
    run = run_dir_of(tmp_path / "out", "deaf")
    events = events_of(run / "journal.jsonl")
    (failed,) = [e for e in events if e["event"] == "fault.failed"]
    assert failed["fault"] == "crash" and "sh -c" in failed["error"]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "error" and result["message"].startswith(said), result["message"]
    assert [p for p in started_pids(events) if alive(p)] == []
