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

from harness.engine.ledger import read_ledger, replay

ROOT = Path(__file__).resolve().parent.parent


def start_harness(tmp: Path, fault_type: str, params: dict[str, Any],
                  processes: dict[str, list[str]] | None = None, wait: float = 0.0,
                  ready_url: str | None = None) -> tuple[subprocess.Popen, dict]:
    """Start the throwaway harness (tests/servers/throwaway_harness.py); returns it once
    the fault is injected (+`wait` s), with the pids it printed."""
    spec = {"type": fault_type, "params": params, "processes": processes or {},
            "ledger_dir": str(tmp / "ledger"), "log_dir": str(tmp / "logs"), "wait": wait,
            "ready_url": ready_url}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, str(ROOT / "tests" / "servers" / "throwaway_harness.py"),
                              json.dumps(spec)], cwd=ROOT, env=env,
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
