"""Process faults: kill, pause, restart or crash-loop a named process of the run.

They act on the processes the runner started (`target` and each started dependency),
each in its own process group, so a fault hits exactly one of them and its children.
`process:` names one of them, or a glob pattern (`worker-*`) whose matches `count` /
`percent` narrow down.

Crash safety: before injecting, the undo record names a small state file. Every
process group the fault pauses or (re)starts is appended to it, so `replay_undo` can,
after a SIGKILL of the harness, SIGCONT what is still paused and kill what the fault
started (the runner's ledger only knows the original pids).
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from faults.selection import SelectorParams, select
from harness.fault import Fault, FaultParams, UserError
from harness.processes import ManagedProcess, kill_group_if_same, process_start_time
from harness.units import Duration

STATE_DIR = Path(tempfile.gettempdir()) / "aftershock-faults"


def parse_signal(value: Any) -> str:
    """`SIGKILL`, `KILL`, `kill` or `9` -> `SIGKILL`."""
    text = str(value).strip().upper()
    try:
        return signal.Signals(int(text)).name if text.isdigit() else signal.Signals[
            text if text.startswith("SIG") else "SIG" + text
        ].name
    except (KeyError, ValueError):
        raise ValueError(f"unknown signal {value!r}: use a name like SIGKILL or SIGTERM") from None


def resolve_names(fault_type: str, pattern: str, declared: set[str] | list[str]) -> list[str]:
    """Declared process names matching `pattern` (a name or a glob); UserError if none."""
    names = sorted(n for n in declared if fnmatch.fnmatchcase(n, pattern))
    if not names:
        known = ", ".join(sorted(declared)) or "none"
        raise UserError(
            f"{fault_type}: process {pattern!r} is not one the run starts (known: {known}); "
            "name the target (`target`) or a started dependency"
        )
    return names


def continue_group_if_same(pgid: int, pid: int, start_time: int | None) -> bool:
    """SIGCONT a process group, but only if its leader is still the process we paused."""
    if start_time is not None and process_start_time(pid) not in (None, start_time):
        return False
    try:
        os.killpg(pgid, signal.SIGCONT)
        return True
    except ProcessLookupError:
        return False


SignalName = Annotated[str, BeforeValidator(parse_signal)]


class StateFile:
    """Append-only JSONL of process groups a fault paused or started, for crash replay."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def new(cls, fault_name: str) -> StateFile:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in fault_name)
        return cls(STATE_DIR / f"{safe}-{uuid.uuid4().hex[:12]}.jsonl")

    def add(self, kind: str, pid: int) -> None:
        entry = {"kind": kind, "pid": pid, "start_time": process_start_time(pid)}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def entries(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # torn last line
        return out

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def replay_state_file(path: str) -> list[str]:
    """Crash undo: SIGCONT paused groups, kill groups the fault started, drop the file."""
    state = StateFile(Path(path))
    done = []
    for e in state.entries():
        if e["kind"] == "paused" and continue_group_if_same(e["pid"], e["pid"], e.get("start_time")):
            done.append(f"resumed (SIGCONT) process group {e['pid']}")
    for e in state.entries():
        if e["kind"] == "started" and kill_group_if_same(e["pid"], e["pid"], e.get("start_time")):
            done.append(f"killed process group {e['pid']} that the fault had started")
    state.remove()
    return done


class Steps:
    """A background thread for a fault's timed steps; `sleep` returns False once stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self, body: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                body()
            except Exception as exc:  # noqa: BLE001 (kept for revert to report)
                self.error = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def sleep(self, seconds: float) -> bool:
        return not self._stop.wait(seconds)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


class ProcessParams(SelectorParams):
    process: str = Field(description="a process the run starts (`target`, a dependency) or a glob")


class ProcessFault(Fault):
    """Base: picks the processes, keeps the crash-replay state file, restarts safely."""

    Params = ProcessParams

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        self._picked: list[str] | None = None
        self._state: StateFile | None = None
        self._lock = threading.RLock()
        self.steps = Steps()

    @classmethod
    def check(cls, params: FaultParams, dependencies: set[str], processes: set[str]) -> None:
        resolve_names(cls.type, params.process, processes)

    # --- selection and bookkeeping -------------------------------------------------
    def picked(self) -> list[str]:
        if self._picked is None:
            names = resolve_names(self.type, self.params.process, set(self.ctx.processes))
            self._picked = select(names, self.params, f"{self.ctx.seed}:{self.name}")
        return self._picked

    def proc(self, name: str) -> ManagedProcess:
        return self.ctx.processes[name]

    @property
    def state(self) -> StateFile:
        if self._state is None:
            self._state = StateFile.new(self.name)
        return self._state

    def undo_record(self) -> dict[str, Any]:
        return {"state_file": str(self.state.path), "processes": self.picked()}

    def action(self, action: str, **fields: Any) -> None:
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action=action, **fields)

    # --- primitive actions -----------------------------------------------------------
    def send(self, name: str, sig: signal.Signals) -> None:
        p = self.proc(name)
        pid = p.pid
        if pid is None or not p.alive():
            self.action("skip", process=name, reason="not running", signal=sig.name)
            return
        p.signal_group(sig)
        self.action("signal", process=name, signal=sig.name, pid=pid)

    def wait_exit(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        p = self.proc(name)
        while p.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def restart(self, name: str, env: dict[str, str] | None = None, reason: str = "restart") -> None:
        """Start `name` again if it is not running (its old group is killed first)."""
        with self._lock:
            p = self.proc(name)
            if p.alive():
                return
            p.signal_group(signal.SIGKILL)  # stragglers left in the old group
            if env is not None:
                p.env = env
            p.start()
            assert p.pid is not None
            self.state.add("started", p.pid)
            self.action("start", process=name, pid=p.pid, reason=reason)

    def revert(self) -> None:
        self.steps.stop()
        self.restore()
        if self._state is not None:
            self._state.remove()
        if self.steps.error is not None:
            err, self.steps.error = self.steps.error, None
            raise RuntimeError(f"{self.type} {self.name}: a timed step failed: {err}") from err

    def restore(self) -> None:
        """Bring the picked processes back to running (subclasses may differ)."""
        if self._picked is None:
            return
        for name in self._picked:
            self.restart(name, reason="revert")

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        done = replay_state_file(record["state_file"])
        return "; ".join(done) if done else "nothing left to undo"


class KillParams(ProcessParams):
    signal: SignalName = Field("SIGKILL", description="signal sent to the process group")
    restart_after: Duration | None = Field(None, description="start it again this long after")
    restart_on_revert: bool = Field(True, description="start it again when the fault ends")


class ProcessKill(ProcessFault):
    """Send a signal (SIGKILL by default); the process comes back after `restart_after`
    or when the fault ends, unless `restart_on_revert: false`."""

    type = "process.kill"
    Params = KillParams

    def inject(self) -> None:
        sig = signal.Signals[self.params.signal]
        for name in self.picked():
            self.send(name, sig)
        if self.params.restart_after is not None:
            self.steps.start(self._restart_later, f"{self.name}-restart")

    def _restart_later(self) -> None:
        if self.steps.sleep(self.params.restart_after):
            for name in self.picked():
                self.wait_exit(name, 5.0)
                self.restart(name, reason="restart_after")

    def restore(self) -> None:
        if self.params.restart_on_revert:
            super().restore()


class ProcessPause(ProcessFault):
    """SIGSTOP the process group; the revert always SIGCONTs it."""

    type = "process.pause"

    def inject(self) -> None:
        for name in self.picked():
            pid = self.proc(name).pid
            if pid is None:
                continue
            self.state.add("paused", pid)  # written before the SIGSTOP: replay must resume it
            self.send(name, signal.SIGSTOP)

    def restore(self) -> None:
        for name in self._picked or []:
            p = self.proc(name)
            if p.pid is not None:
                p.signal_group(signal.SIGCONT)
                self.action("signal", process=name, signal="SIGCONT", pid=p.pid)


class RestartParams(ProcessParams):
    grace: Duration = Field(5.0, description="SIGTERM, then SIGKILL after this long")
    downtime: Duration = Field(0.0, description="wait this long between stop and start")


class ProcessRestart(ProcessFault):
    """Stop the process (SIGTERM, SIGKILL after `grace`) and start it again after `downtime`."""

    type = "process.restart"
    Params = RestartParams

    def inject(self) -> None:
        for name in self.picked():
            self.send(name, signal.SIGTERM)
        self.steps.start(self._finish, f"{self.name}-restart")

    def _finish(self) -> None:
        for name in self.picked():
            if not self.wait_exit(name, self.params.grace):
                self.send(name, signal.SIGKILL)
                self.wait_exit(name, 5.0)
        if self.steps.sleep(self.params.downtime):
            for name in self.picked():
                self.restart(name, reason="restart")


class CrashLoopParams(ProcessParams):
    kills: int = Field(3, ge=1, description="how many times the process is killed")
    signal: SignalName = "SIGKILL"
    restart_after: Duration = Field(1.0, description="a supervisor restarts it this long after each kill")
    kill_after: Duration = Field(1.0, description="each restarted process lives this long")


class ProcessCrashLoop(ProcessFault):
    """Kill the process, restart it, kill it again: `kills` times, then leave it running."""

    type = "process.crash_loop"
    Params = CrashLoopParams

    def inject(self) -> None:
        sig = signal.Signals[self.params.signal]
        for name in self.picked():
            self.send(name, sig)
        self.action("crash", kill=1, of=self.params.kills)
        self.steps.start(self._loop, f"{self.name}-crash-loop")

    def _loop(self) -> None:
        sig = signal.Signals[self.params.signal]
        for n in range(2, self.params.kills + 2):
            if not self.steps.sleep(self.params.restart_after):
                return
            for name in self.picked():
                self.wait_exit(name, 5.0)
                self.restart(name, reason="crash_loop")
            if n > self.params.kills or not self.steps.sleep(self.params.kill_after):
                return
            for name in self.picked():
                self.send(name, sig)
            self.action("crash", kill=n, of=self.params.kills)
