"""Shared by the infrastructure-fault tests: a throwaway harness process that writes the
ledger and injects one fault, so a test can SIGKILL it and replay the ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.ledger import read_ledger, replay

ROOT = Path(__file__).resolve().parent.parent

# argv[1]: JSON {"type", "params", "processes": {name: argv}, "ledger_dir", "log_dir", "wait"}
_CHILD = r"""
import json, sys, time
from pathlib import Path
from harness.fault import FaultContext
from harness.ledger import Ledger
from harness.plugins import fault_types
from harness.processes import ManagedProcess

spec = json.loads(sys.argv[1])
ledger = Ledger(Path(spec["ledger_dir"]), "run")
procs = {}
for name, argv in spec["processes"].items():
    p = ManagedProcess(name, argv, Path(spec["log_dir"]) / f"{name}.log")
    p.start()
    ledger.process_started(name, p.pid)
    procs[name] = p
cls = fault_types()[spec["type"]]
fault = cls("crashy", cls.Params(**spec["params"]), FaultContext(toxiproxy_url="", processes=procs))
ledger.fault_planned("run:crashy", cls.type, fault.undo_record())
fault.inject()
time.sleep(spec.get("wait", 0))
print(json.dumps({"pids": {n: p.pid for n, p in procs.items()}}), flush=True)
time.sleep(600)
"""


def start_harness(tmp: Path, fault_type: str, params: dict[str, Any],
                  processes: dict[str, list[str]] | None = None, wait: float = 0.0) -> tuple[subprocess.Popen, dict]:
    """Start the throwaway harness; returns it once the fault is injected (+`wait` s)."""
    spec = {"type": fault_type, "params": params, "processes": processes or {},
            "ledger_dir": str(tmp / "ledger"), "log_dir": str(tmp / "logs"), "wait": wait}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(spec)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = child.stdout.readline()
    if not line:
        child.wait(10)
        raise AssertionError(f"throwaway harness exited with {child.returncode} before injecting")
    return child, json.loads(line)


def sigkill_and_replay(child: subprocess.Popen, tmp: Path) -> list[str]:
    """SIGKILL the throwaway harness (not its children) and replay its ledger like cleanup does."""
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    child.stdout.close()
    left = read_ledger(tmp / "ledger" / "run.jsonl")
    assert not left.closed and left.faults, "the ledger should hold the open fault"
    return replay(left)


def proc_state(pid: int) -> str | None:
    """The kernel's one-letter state of `pid` (R, S, T, Z, ...), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2]


def wait_for(cond, timeout: float = 15.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return cond()


def gone(pid: int) -> bool:
    """Dead or a zombie (a zombie has already let go of everything)."""
    return proc_state(pid) in (None, "Z")
