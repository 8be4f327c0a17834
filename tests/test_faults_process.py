"""process.* faults on real child processes (each in its own process group), their
reverts, and their undo from the ledger after the harness is SIGKILLed."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
from infra_fault_support import gone, proc_state, sigkill_and_replay, start_harness, wait_for
from pydantic import ValidationError

from faults.selection import SelectorParams, select
from harness.core.fault import FaultContext, UserError
from harness.core.processes import ManagedProcess
from harness.core.registry import fault_types

SLEEPER = ["sleep", "120"]
# exits 0 on SIGTERM after writing a line: shows a graceful stop happened
GRACEFUL = ["python3", "-c", ("import signal,sys,time\n"
            "signal.signal(signal.SIGTERM, lambda *a: (print('term', flush=True), sys.exit(0)))\n"
            "print('ready', flush=True)\ntime.sleep(120)")]


@pytest.fixture
def procs(tmp_path: Path):
    started: dict[str, ManagedProcess] = {}

    def make(name: str, argv: list[str] = SLEEPER) -> ManagedProcess:
        p = ManagedProcess(name, argv, tmp_path / f"{name}.log")
        p.start()
        started[name] = p
        if argv is GRACEFUL:  # its SIGTERM handler must be in place before a fault hits it
            assert wait_for(lambda: "ready" in p.log_path.read_text(), 15)
        return p

    try:
        yield make, started
    finally:
        for p in started.values():
            p.stop(grace=1)


def build(fault_type: str, started: dict, events: list | None = None, name: str = "f", **params):
    cls = fault_types()[fault_type]
    journal = (lambda event, **f: events.append({"event": event, **f})) if events is not None else None
    ctx = FaultContext(toxiproxy_url="", processes=started, seed=7,
                       **({"journal": journal} if journal else {}))
    cls.check(cls.Params(**params), set(), set(started))
    return cls(name, cls.Params(**params), ctx)


@contextmanager
def injected(fault):
    """What the runner does: undo record first, inject, and revert on every path out."""
    fault.undo_record()
    try:
        fault.inject()
        yield fault
    finally:
        fault.revert()


def test_check_rejects_undeclared_process_with_a_clear_message():
    cls = fault_types()["process.kill"]
    with pytest.raises(UserError, match=r"process 'feature-stor' is not one the run starts \(known: feature-store, target\)"):
        cls.check(cls.Params(process="feature-stor"), set(), {"target", "feature-store"})
    with pytest.raises(ValidationError, match="unknown signal"):
        cls.Params(process="target", signal="SIGNOPE")
    with pytest.raises(ValidationError, match="either `count` or `percent`"):
        cls.Params(process="target", count=1, percent="50%")


def test_selection_is_seeded_and_sized():
    names = [f"w{i}" for i in range(10)]
    p = SelectorParams(percent="30%")
    assert len(select(names, p, "s")) == 3
    assert select(names, p, "s") == select(list(reversed(names)), p, "s")  # order of matches does not matter
    assert len(select(names, SelectorParams(percent="1%"), "s")) == 1  # rounds up: at least one
    assert len(select(names, SelectorParams(count=20), "s")) == 10
    picks = {tuple(select(names, SelectorParams(count=2), seed)) for seed in range(20)}
    assert len(picks) > 1  # the seed matters


def test_kill_restarts_after_delay_and_revert_is_idempotent(procs):
    make, started = procs
    old = make("target").pid
    make("feature-store")
    events: list = []
    fault = build("process.kill", started, events, process="target", restart_after="300ms")
    with injected(fault):
        assert wait_for(lambda: gone(old), 10)
        assert wait_for(lambda: started["target"].pid != old and started["target"].alive(), 10)
    new = started["target"].pid
    fault.revert()  # again: no second restart
    assert started["target"].pid == new and started["target"].alive()
    assert started["feature-store"].alive()  # only the named process was hit
    actions = [e["action"] for e in events]
    assert actions == ["signal", "verified", "start", "verified"]  # each action checked
    assert not Path(fault.undo_record()["state_file"]).exists()


def test_kill_without_restart_stays_down_until_revert(procs):
    make, started = procs
    old = make("target", GRACEFUL).pid
    fault = build("process.kill", started, process="target", signal="SIGTERM")
    with injected(fault):
        assert wait_for(lambda: not started["target"].alive(), 10)
        assert "term" in (started["target"].log_path.read_text())  # it got SIGTERM, not SIGKILL
    assert started["target"].alive() and started["target"].pid != old
    keep_down = build("process.kill", started, name="g", process="target", restart_on_revert=False)
    with injected(keep_down):
        pass
    assert wait_for(lambda: not started["target"].alive(), 10)


def test_pause_stops_the_group_and_revert_always_continues(procs):
    make, started = procs
    pid = make("target").pid
    fault = build("process.pause", started, process="target")
    with pytest.raises(RuntimeError, match="boom"), injected(fault):
        assert wait_for(lambda: proc_state(pid) == "T", 5)
        raise RuntimeError("boom")  # an exception mid-fault: the revert still runs
    assert wait_for(lambda: proc_state(pid) in ("S", "R"), 5)
    fault.revert()
    assert proc_state(pid) in ("S", "R")


def test_revert_is_safe_when_inject_never_ran(procs):
    make, started = procs
    make("target")
    for t in ("process.kill", "process.pause", "process.restart", "process.crash_loop"):
        build(t, started, process="target").revert()
    assert started["target"].alive()


def test_restart_is_graceful_and_gives_a_new_process(procs):
    make, started = procs
    old = make("target", GRACEFUL).pid
    fault = build("process.restart", started, process="target", grace="5s", downtime="100ms")
    with injected(fault):
        assert wait_for(lambda: started["target"].pid != old and started["target"].alive(), 15)
    assert "term" in started["target"].log_path.read_text()


def test_crash_loop_kills_n_times_then_leaves_it_running(procs):
    make, started = procs
    first = make("target").pid
    events: list = []
    fault = build("process.crash_loop", started, events, process="target", kills=3,
                  restart_after="150ms", kill_after="150ms")
    with injected(fault):
        assert wait_for(lambda: sum(e["action"] == "start" for e in events) == 3, 20)
    crashes = [e for e in events if e["action"] == "crash"]
    assert [c["kill"] for c in crashes] == [1, 2, 3]
    pids = {first} | {e["pid"] for e in events if e["action"] == "start"}
    assert len(pids) == 4 and started["target"].alive()


def test_pattern_with_count_hits_only_the_picked_instances(procs):
    make, started = procs
    for i in range(4):
        make(f"worker-{i}")
    fault = build("process.pause", started, process="worker-*", count=2)
    with injected(fault):
        states = {n: proc_state(p.pid) for n, p in started.items()}
        assert wait_for(lambda: sum(proc_state(p.pid) == "T" for p in started.values()) == 2, 5), states
    assert all(proc_state(p.pid) in ("S", "R") for p in started.values())


def test_replay_resumes_a_paused_group_after_the_harness_is_sigkilled(tmp_path):
    child, info = start_harness(tmp_path, "process.pause", {"process": "target"}, {"target": SLEEPER})
    pid = info["pids"]["target"]
    try:
        assert wait_for(lambda: proc_state(pid) == "T", 5)
        actions = sigkill_and_replay(child, tmp_path)
        assert any("resumed (SIGCONT)" in a for a in actions), actions
        assert wait_for(lambda: gone(pid), 10)  # then the ledger's process entry killed it
    finally:
        child.kill()
        signal_if_alive(pid)


def test_replay_kills_a_process_the_fault_restarted(tmp_path):
    child, info = start_harness(tmp_path, "process.kill", {"process": "target", "restart_after": "100ms"},
                                {"target": SLEEPER}, wait=1.0)
    state_file = next((tmp_path / "ledger").glob("*.jsonl")).read_text()
    try:
        restarted = info["pids"]["target"]
        assert restarted is not None and "state_file" in state_file
        assert proc_state(restarted) in ("S", "R")
        actions = sigkill_and_replay(child, tmp_path)
        assert any("that the fault had started" in a for a in actions), actions
        assert wait_for(lambda: gone(restarted), 10)
    finally:
        child.kill()
        signal_if_alive(info["pids"]["target"])


def signal_if_alive(pid: int) -> None:
    import os

    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
