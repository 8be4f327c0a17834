"""process.* faults act on the whole process tree and check they took effect.

The target is tests/servers/own_session.py: an arbiter whose HTTP worker runs in a
session of its own, as BentoML's workers do, so a signal to the arbiter's process group
never reaches it. Each case checks what a client sees (the port answers, refuses or
hangs), the kernel's view (/proc state), and that a fault that could not act fails
loudly (FaultFailed, `fault.failed` in the journal).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from infra_fault_support import gone, proc_state, sigkill_and_replay, start_harness, wait_for

from harness.core.fault import FaultContext, FaultFailed
from harness.core.processes import ManagedProcess, free_port, kill_group_if_same
from harness.core.registry import fault_types

ROOT = Path(__file__).resolve().parents[1]
OWN_SESSION = [sys.executable, str(ROOT / "tests" / "servers" / "own_session.py")]
# ignores SIGTERM, and so does the `sleep` it runs (an ignored signal stays ignored across exec)
DEAF = ["sh", "-c", "trap '' TERM; sleep 600"]


def serves(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def listeners(port: int) -> str:
    """Who still accepts on `port` (pid, state, command line), for a failure message."""
    import psutil

    found = []
    for c in psutil.net_connections("tcp"):
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN:
            try:
                p = psutil.Process(c.pid) if c.pid else None
                found.append(f"pid {c.pid} ({p.status() if p else '?'}): {' '.join(p.cmdline()) if p else '?'}; "
                             f"parent {p.ppid() if p else '?'}")
            except psutil.Error as exc:
                found.append(f"pid {c.pid}: {exc}")
    return f"port {port} still listened on by: {found or 'nobody (a connection was accepted anyway)'}"


def refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextmanager
def squatting(port: int):
    """A listener outside the tree on `port`: accepts, never answers (a server can't bind)."""
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        yield


def worker_of(p: ManagedProcess) -> int:
    """The arbiter's worker: a process of the tree in another session than the arbiter."""
    others = [m.pid for m in p.members() if os.getsid(m.pid) != os.getsid(p.pid)]
    assert others, "the test server should run its worker in a session of its own"
    return others[0]


@pytest.fixture
def server(tmp_path: Path):
    port = free_port()
    p = ManagedProcess("target", [*OWN_SESSION, str(port)], tmp_path / "target.log")
    p.start()
    try:
        p.wait_http_ready(f"http://127.0.0.1:{port}/v2/health/ready", timeout=30)
        yield p, port
    finally:
        p.stop(grace=2)


def build(fault_type: str, procs: dict, events: list, **params):
    cls = fault_types()[fault_type]
    ctx = FaultContext(toxiproxy_url="", processes=procs,
                       journal=lambda event, **f: events.append({"event": event, **f}))
    return cls("f", cls.Params(**params), ctx)


def test_kill_takes_down_the_worker_in_its_own_session_and_restart_serves_again(server):
    p, port = server
    worker, arbiter = worker_of(p), p.pid
    events: list = []
    fault = build("process.kill", {"target": p}, events, process="target")
    fault.undo_record()
    try:
        fault.inject()
        assert gone(arbiter) and gone(worker), "the whole tree is down"
        assert refuses(port), "nothing answers on the port any more"
        verified = [e for e in events if e["action"] == "verified"]
        assert verified[0]["effect"] == "gone" and verified[0]["ports_freed"] == [port]
        assert worker in verified[0]["pids"]
    finally:
        fault.revert()
    fault.metrics()  # where the readiness check of the restart reports (read after the load)
    assert p.alive() and p.pid != arbiter
    assert serves(port), "the restarted server binds the port again and answers"
    assert worker_of(p) != worker
    assert [e["effect"] for e in events if e["action"] == "verified"] == ["gone", "ready"]
    assert not any(e["event"] == "fault.failed" for e in events)


def test_stop_at_the_end_of_a_run_takes_the_worker_too(server):
    p, port = server
    worker = worker_of(p)
    p.stop(grace=2)
    assert wait_for(lambda: gone(worker), 5)
    assert refuses(port)


def test_pause_stops_every_process_of_the_tree_and_revert_continues_them(server):
    p, port = server
    worker = worker_of(p)
    events: list = []
    fault = build("process.pause", {"target": p}, events, process="target")
    fault.undo_record()
    try:
        fault.inject()
        assert proc_state(p.pid) == "T" and proc_state(worker) == "T"
        assert not serves(port), "a stopped worker does not answer"
    finally:
        fault.revert()
    assert proc_state(worker) in ("S", "R") and serves(port)
    assert [e["effect"] for e in events if e["action"] == "verified"] == ["stopped", "running"]


def test_restart_kills_a_worker_that_ignores_sigterm_after_grace(tmp_path):
    p = ManagedProcess("job", DEAF, tmp_path / "job.log")
    p.start()
    try:
        assert wait_for(lambda: len(p.members()) == 2, 5)
        first = [m.pid for m in p.members()]
        events: list = []
        fault = build("process.restart", {"job": p}, events, process="job", grace="300ms")
        fault.undo_record()
        try:
            fault.inject()
            assert wait_for(lambda: any(e["action"] == "start" for e in events), 15)
        finally:
            fault.revert()
        assert all(gone(pid) for pid in first)
        signals = [e["signal"] for e in events if e["action"] == "signal"]
        assert signals == ["SIGTERM", "SIGKILL"]
    finally:
        p.stop(grace=0.5)


# --- a fault that cannot act fails loudly ------------------------------------------------


def test_kill_fails_loudly_when_the_tree_survives_the_signal(tmp_path):
    p = ManagedProcess("job", DEAF, tmp_path / "job.log")
    p.start()
    try:
        assert wait_for(lambda: len(p.members()) == 2, 5)
        events: list = []
        fault = build("process.kill", {"job": p}, events, process="job", signal="SIGTERM",
                      exit_timeout="500ms", restart_on_revert=False)
        fault.undo_record()
        with pytest.raises(FaultFailed, match=r"job is still running 0.5s after SIGTERM: pid \d+ \(sh -c"):
            fault.inject()
        failed = [e for e in events if e["event"] == "fault.failed"]
        assert len(failed) == 1 and "still running" in failed[0]["error"]
        fault.revert()
    finally:
        p.stop(grace=0.5)


def test_pause_of_a_process_that_is_gone_fails_loudly(tmp_path):
    p = ManagedProcess("job", ["sleep", "600"], tmp_path / "job.log")
    p.start()
    p.stop(grace=0.5)
    events: list = []
    fault = build("process.pause", {"job": p}, events, process="job")
    fault.undo_record()
    with pytest.raises(FaultFailed, match="process 'job' is not running: nothing to pause"):
        fault.inject()
    assert [e["event"] for e in events] == ["fault.failed"]
    fault.revert()


def test_restart_that_cannot_bind_its_port_fails_loudly(server):
    """What BentoML's restart did: the port is held by a process outside the tree."""
    p, port = server
    p.ready_timeout = 3.0  # the test's patience; a real run uses the scenario's ready.timeout
    events: list = []
    fault = build("process.kill", {"target": p}, events, process="target")
    fault.undo_record()
    fault.inject()
    with squatting(port):
        fault.revert()  # starts it, and does not wait: the fault ends on time
        with pytest.raises(FaultFailed, match="target was started again but is not ready"):
            fault.metrics()
    assert any(e["event"] == "fault.failed" for e in events)


def test_crash_replay_kills_the_worker_that_left_the_session(tmp_path):
    """SIGKILL the harness while it pauses the server: the ledger's replay resumes and
    then kills the whole tree, the worker in its own session included."""
    port = free_port()
    child, info = start_harness(tmp_path, "process.pause", {"process": "target"},
                                {"target": [*OWN_SESSION, str(port)]}, ready_url=f"http://127.0.0.1:{port}/v2/health/ready")
    arbiter = info["pids"]["target"]
    worker = next(pid for pid in info["members"]["target"] if pid != arbiter)
    try:
        assert proc_state(worker) == "T"
        actions = sigkill_and_replay(child, tmp_path)
        assert any("resumed (SIGCONT)" in a for a in actions), actions
        assert any(a.startswith("process target") and a.endswith("killed") for a in actions), actions
        assert wait_for(lambda: gone(arbiter) and gone(worker), 10)
        assert wait_for(lambda: refuses(port), 5), listeners(port)
    finally:
        child.kill()
        for pid in (arbiter, worker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_restart_that_failed_before_the_revert_fails_the_revert(server):
    p, port = server
    p.ready_timeout = 2.0
    events: list = []
    fault = build("process.kill", {"target": p}, events, process="target", restart_after="300ms")
    fault.undo_record()
    fault.inject()
    with squatting(port):
        assert wait_for(lambda: any(e["event"] == "fault.failed" for e in events), 20)
        with pytest.raises(FaultFailed, match="target was started again but is not ready"):
            fault.revert()


def test_the_old_group_kill_takes_the_tree_but_only_of_the_process_it_names(server):
    p, port = server
    worker = worker_of(p)
    assert kill_group_if_same(p.pid, p.pid, None) is False, "no start time: not provably ours"
    assert kill_group_if_same(p.pid, p.pid, p.start_time + 1) is False, "another process's start time"
    assert serves(port)
    assert kill_group_if_same(p.pid, p.pid, p.start_time) is True
    assert wait_for(lambda: gone(worker), 5) and refuses(port)
