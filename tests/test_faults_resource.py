"""resource.* faults: real busy cores, real resident memory, a real file on disk; each
released on revert (also after an exception) and by replay after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from infra_fault_support import gone, sigkill_and_replay, start_harness, wait_for
from pydantic import ValidationError

from faults.resource import marked_pids
from harness.core.fault import FaultContext, FaultFailed, UserError
from harness.core.registry import fault_types

TICKS = os.sysconf("SC_CLK_TCK")


def build(fault_type: str, events: list | None = None, **params):
    cls = fault_types()[fault_type]
    kw = {"journal": lambda event, **f: events.append({"event": event, **f})} if events is not None else {}
    return cls("f", cls.Params(**params), FaultContext(toxiproxy_url="", **kw))


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_cpu_burns_the_asked_cores_and_revert_kills_them():
    events: list = []
    fault = build("resource.cpu", events, cores=2, load="100%")
    marker = fault.undo_record()["marker"]
    try:
        fault.inject()
        assert wait_for(lambda: len(marked_pids(marker)) == 2, 10)
        pids = marked_pids(marker)
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(1.0)
        used = sum(cpu_seconds(p) for p in pids) - before
        # loose: on a 2-core box at load 12 two burners get about 0.3 s of a second
        assert used > 0.05, f"burners used only {used:.2f}s of CPU in 1s"
    finally:
        fault.revert()
    assert wait_for(lambda: all(gone(p) for p in pids), 5)
    fault.revert()  # idempotent
    assert [e["action"] for e in events] == ["burn", "verified", "release"]


def test_memory_is_resident_while_held_and_released_on_revert_after_an_exception():
    fault = build("resource.memory", size="64MiB")
    with pytest.raises(RuntimeError, match="mid-fault"):
        try:
            fault.inject()
            pid = fault.child.pid
            assert rss_bytes(pid) >= 60 * 2**20
            raise RuntimeError("mid-fault")
        finally:
            fault.revert()
    assert gone(pid)


def test_disk_fill_writes_the_size_and_is_always_deleted(tmp_path: Path):
    events: list = []
    fault = build("resource.disk_fill", events, directory=str(tmp_path), size="8MiB")
    path = Path(fault.undo_record()["path"])
    with pytest.raises(KeyboardInterrupt):
        try:
            fault.inject()
            st = path.stat()
            assert st.st_size == 8 * 2**20 and st.st_blocks * 512 >= 8 * 2**20  # really allocated
            raise KeyboardInterrupt  # Ctrl-C mid-fault
        finally:
            fault.revert()
    assert not path.exists()
    assert events[0]["bytes"] == 8 * 2**20 and events[-1]["action"] == "delete"


def test_disk_fill_params_and_missing_directory(tmp_path: Path):
    cls = fault_types()["resource.disk_fill"]
    with pytest.raises(ValidationError, match="exactly one of `size`"):
        cls.Params(directory=str(tmp_path))
    with pytest.raises(ValidationError, match="invalid size"):
        cls.Params(directory=str(tmp_path), size="lots")
    fault = build("resource.disk_fill", directory=str(tmp_path / "nope"), size="1KB")
    with pytest.raises(UserError, match="does not exist"):
        fault.inject()
    fault.revert()
    # leave_free: fill until only that much is free (we ask for far more free space than
    # exists, so it writes nothing: no real disk is filled by the test suite)
    huge = build("resource.disk_fill", directory=str(tmp_path), leave_free="900000GB")
    huge.inject()
    assert huge.path.stat().st_size == 0
    huge.revert()


@pytest.mark.parametrize("fault_type,params", [
    ("resource.cpu", {"cores": 1, "load": "50%"}),
    ("resource.memory", {"size": "16MiB"}),
])
def test_replay_kills_pressure_children_after_the_harness_is_sigkilled(tmp_path, fault_type, params):
    child, _ = start_harness(tmp_path, fault_type, params)
    record = json.loads((tmp_path / "ledger" / "run.jsonl").read_text().splitlines()[1])["record"]
    try:
        pids = marked_pids(record["marker"])
        assert pids, "the pressure child should be running"
        actions = sigkill_and_replay(child, tmp_path)
        assert "killed" in actions[0], actions
        assert wait_for(lambda: all(gone(p) for p in pids), 5)
    finally:
        child.kill()
        for p in marked_pids(record["marker"]):
            os.kill(p, 9)


def test_replay_deletes_the_fill_file_after_the_harness_is_sigkilled(tmp_path):
    fill_dir = tmp_path / "data"
    fill_dir.mkdir()
    child, _ = start_harness(tmp_path, "resource.disk_fill", {"directory": str(fill_dir), "size": "1MiB"})
    try:
        assert len(list(fill_dir.iterdir())) == 1
        actions = sigkill_and_replay(child, tmp_path)
        assert "deleted fill file" in actions[0], actions
        assert list(fill_dir.iterdir()) == []
    finally:
        child.kill()


def test_each_pressure_is_checked_and_one_that_is_not_there_fails_loudly():
    events: list = []
    cpu = build("resource.cpu", events, cores=2, load="30%")
    cpu.undo_record()
    try:
        cpu.inject()
        assert [e["effect"] for e in events if e["action"] == "verified"] == ["cpu busy"]
        for p in cpu.pressure():
            os.kill(p.pid, signal.SIGSTOP)  # stopped burners burn nothing
        with pytest.raises(FaultFailed, match="the burners used no CPU time"):
            cpu.check_burning()
    finally:
        cpu.revert()
    assert events[-2]["event"] == "fault.failed"
    events.clear()
    too_big = build("resource.memory", events, size="900000GB")  # more than the machine can promise
    too_big.undo_record()
    with pytest.raises(FaultFailed, match="exited with code 1 before holding its load"):
        too_big.inject()
    too_big.revert()
    assert [e["event"] for e in events] == ["fault.failed"]
