"""Process faults: kill, pause, restart or crash-loop a named process of the run.

They act on the processes the runner started (`target` and each started dependency)
and on each one's whole process tree: workers that made sessions and process groups
of their own are hit too (harness.core.process_tree), as a real crash or `docker kill`
would hit them. `process:` names one of them, or a glob pattern (`worker-*`) whose
matches `count` / `percent` narrow down.

Every action is checked, and a fault whose effect is not seen fails loudly
(FaultFailed, journaled as `fault.failed`): after a kill every process of the tree is
gone and the ports it listened on are free; after a pause every one is stopped (state
T), after the revert none is; after a (re)start the process passes the readiness test
it passed when the run started it (checked in the background, so a slow start does not
delay the revert; a check that fails after the revert fails the run when the fault's
figures are read, `metrics()`).

Crash safety: before injecting, the undo record names a small state file. Every
process tree the fault pauses or (re)starts is appended to it, so `replay_undo` can,
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
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import psutil
from pydantic import BeforeValidator, Field

from faults.selection import SelectorParams, select
from harness.core.fault import Fault, FaultFailed, FaultParams, UserError
from harness.core.polling import wait_until
from harness.core.process_tree import (
    describe,
    kill_tree_if_same,
    listening_ports,
    send,
    signal_tree,
    still_listening,
    wait_gone,
    wait_status,
)
from harness.core.processes import ManagedProcess
from harness.core.units import Duration

STATE_DIR = Path(tempfile.gettempdir()) / "aftershock-faults"
SETTLE_S = 5.0  # how long a SIGKILL, SIGSTOP or SIGCONT may take to show in /proc


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


def continue_tree_if_same(pid: int, start_time: int | None, marker: str | None) -> bool:
    """SIGCONT a paused tree (its leader only if it is still the process we paused)."""
    return bool(signal_tree(pid, start_time, marker, signal.SIGCONT))


SignalName = Annotated[str, BeforeValidator(parse_signal)]


class StateFile:
    """Append-only JSONL of process trees a fault paused or started, for crash replay."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def new(cls, fault_name: str) -> StateFile:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in fault_name)
        return cls(STATE_DIR / f"{safe}-{uuid.uuid4().hex[:12]}.jsonl")

    def add(self, kind: str, p: ManagedProcess) -> None:
        entry = {"kind": kind, "pid": p.pid, "start_time": p.start_time, "marker": p.marker}
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
    """Crash undo: SIGCONT paused trees, kill trees the fault started, drop the file."""
    state = StateFile(Path(path))
    done = []
    for e in state.entries():
        if e["kind"] == "paused" and continue_tree_if_same(e["pid"], e.get("start_time"), e.get("marker")):
            done.append(f"resumed (SIGCONT) the process tree of {e['pid']}")
    for e in state.entries():
        if e["kind"] == "started" and kill_tree_if_same(e["pid"], e.get("start_time"), e.get("marker")):
            done.append(f"killed the process tree of {e['pid']} that the fault had started")
    state.remove()
    return done


class Steps:
    """A background thread for a fault's timed steps; `sleep` returns False once stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self, body: Callable[[], None], name: str,
              on_error: Callable[[BaseException], None] | None = None) -> None:
        def run() -> None:
            try:
                body()
            except Exception as exc:  # noqa: BLE001 (kept for revert to report)
                self.error = exc
                if on_error is not None:
                    on_error(exc)

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
    """Base: picks the processes, acts on their trees, checks every action took effect."""

    Params = ProcessParams

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        self._picked: list[str] | None = None
        self._state: StateFile | None = None
        self._lock = threading.RLock()
        self.steps = Steps()
        self._checks: list[threading.Thread] = []
        self._check_errors: list[FaultFailed] = []

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

    def fail(self, message: str) -> NoReturn:
        """The fault did not take effect: say so in the journal and stop the run passing."""
        self.ctx.journal("fault.failed", fault=self.name, type=self.type, error=message)
        raise FaultFailed(f"{self.type} {self.name}: {message}")

    # --- primitive actions, each checked -------------------------------------------
    def members(self, name: str, doing: str) -> list[psutil.Process]:
        """The live processes of `name`'s tree; fails if there are none to act on."""
        members = self.proc(name).members()
        if not members:
            self.fail(f"process {name!r} is not running: nothing to {doing}")
        return members

    def send(self, name: str, sig: signal.Signals) -> list[psutil.Process]:
        """Signal `name`'s whole tree (a notice: nothing is expected of it)."""
        members = self.members(name, f"send {sig.name} to")
        hit = self.proc(name).signal_tree(sig)
        self.action("signal", process=name, signal=sig.name, pid=self.proc(name).pid,
                    tree=[m.pid for m in hit])
        return members + hit

    def take_down(self, name: str, sig: signal.Signals, timeout: float) -> None:
        """Signal `name`'s whole tree; check every process is gone and its ports are free."""
        members = self.members(name, "kill")
        ports = listening_ports(members)
        members += self.send(name, sig)
        self.check_gone(name, members, ports, f"{sig.name}", timeout)

    def check_gone(self, name: str, members: list[psutil.Process], ports: set[int], after: str,
                   timeout: float) -> None:
        left = wait_gone(members, timeout)
        if left:
            self.fail(f"{name} is still running {timeout:g}s after {after}: {describe(left)}")
        self.proc(name).alive()  # reaps the leader
        wait_until(lambda: not still_listening(ports), SETTLE_S)
        if busy := still_listening(ports):
            self.fail(f"{name}'s processes are gone but port(s) {sorted(busy)} still listen")
        self.action("verified", process=name, effect="gone", pids=sorted({m.pid for m in members}),
                    ports_freed=sorted(ports))

    def stop_tree(self, name: str, grace: float) -> None:
        """SIGTERM the tree, SIGKILL what is left after `grace`; checked like a kill."""
        members = self.members(name, "stop")
        ports = listening_ports(members)
        members += self.send(name, signal.SIGTERM)
        if wait_gone(members, grace):
            members += self.send(name, signal.SIGKILL)
        self.check_gone(name, members, ports, f"SIGTERM and, {grace:g}s later, SIGKILL", SETTLE_S)

    def restart(self, name: str, env: dict[str, str] | None = None, reason: str = "restart") -> None:
        """Start `name` again if it is not running, and have its readiness checked.

        What is left of its old tree (a worker whose parent died) is killed first: it
        would hold the port the new process needs.
        """
        with self._lock:
            p = self.proc(name)
            if p.alive():
                return
            left = wait_gone(p.signal_tree(signal.SIGKILL), SETTLE_S)
            if left:
                self.fail(f"cannot restart {name}: its old processes survive SIGKILL: {describe(left)}")
            if env is not None:
                p.env = env
            p.start()
            assert p.pid is not None
            self.state.add("started", p)
            self.action("start", process=name, pid=p.pid, reason=reason)
            if p.ready_check is None:  # a job that declared none: started is all we can say
                self.action("verified", process=name, effect="started", pid=p.pid)
                return
            # checked in the background: a slow start must not hold up the revert (the
            # fault's end, from which recovery is measured) or the next timed step
            check = threading.Thread(target=self._check_ready, args=(name, p.pid),
                                     name=f"{self.name}-ready-{name}", daemon=True)
            self._checks.append(check)
            check.start()

    def _check_ready(self, name: str, pid: int) -> None:
        """The readiness test the process passed when the run started it, once more."""
        p = self.proc(name)
        try:
            p.ready_check(p.ready_timeout)
        except UserError as exc:
            if p.pid != pid:  # a check overtaken by a later restart
                return
            message = f"{name} was started again but is not ready: {exc}"
            self._check_errors.append(FaultFailed(f"{self.type} {self.name}: {message}"))
            self.ctx.journal("fault.failed", fault=self.name, type=self.type, error=message)
            return
        self.action("verified", process=name, effect="ready", pid=pid)

    def finish_checks(self, timeout: float | None = None) -> None:
        """Wait for the readiness checks still running; raise the first that failed."""
        for check in self._checks:
            check.join(timeout)
        if self._check_errors:
            raise self._check_errors[0]

    def metrics(self) -> dict[str, float]:
        """Read once after the load ends: where a readiness check that outlived the revert
        reports (a restarted server that never got ready fails the run here)."""
        self.finish_checks()
        return {}

    def report_step_error(self, exc: BaseException) -> None:
        """A timed step failed: journal it now; the revert raises it."""
        if not isinstance(exc, FaultFailed):  # a FaultFailed journaled itself
            self.ctx.journal("fault.failed", fault=self.name, type=self.type, error=str(exc))

    def revert(self) -> None:
        self.steps.stop()
        self.restore()
        if self._state is not None:
            self._state.remove()
        if self.steps.error is not None:
            err, self.steps.error = self.steps.error, None
            if isinstance(err, FaultFailed):
                raise err
            raise RuntimeError(f"{self.type} {self.name}: a timed step failed: {err}") from err
        self.finish_checks(timeout=0)  # one that already failed fails the revert

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
    signal: SignalName = Field("SIGKILL", description="signal sent to every process of the tree")
    exit_timeout: Duration = Field(
        10.0, description="the processes must be gone this long after the signal, or the fault fails")
    restart_after: Duration | None = Field(None, description="start it again this long after")
    restart_on_revert: bool = Field(True, description="start it again when the fault ends")


class ProcessKill(ProcessFault):
    """Send a signal (SIGKILL by default) to the process tree and check it is gone; it comes
    back after `restart_after` or when the fault ends, unless `restart_on_revert: false`."""

    type = "process.kill"
    Params = KillParams

    def inject(self) -> None:
        sig = signal.Signals[self.params.signal]
        for name in self.picked():
            self.take_down(name, sig, self.params.exit_timeout)
        if self.params.restart_after is not None:
            self.steps.start(self._restart_later, f"{self.name}-restart", self.report_step_error)

    def _restart_later(self) -> None:
        if self.steps.sleep(self.params.restart_after):
            for name in self.picked():
                self.restart(name, reason="restart_after")

    def restore(self) -> None:
        if self.params.restart_on_revert:
            super().restore()


class ProcessPause(ProcessFault):
    """SIGSTOP the process tree and check every process is stopped; the revert always
    SIGCONTs it and checks none is stopped any more."""

    type = "process.pause"

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        self._paused: dict[str, list[psutil.Process]] = {}

    def inject(self) -> None:
        for name in self.picked():
            p = self.proc(name)
            self.members(name, "pause")
            self.state.add("paused", p)  # written before the SIGSTOP: replay must resume it
            hit = p.signal_tree(signal.SIGSTOP)
            self._paused[name] = hit
            self.action("signal", process=name, signal="SIGSTOP", pid=p.pid, tree=[m.pid for m in hit])
            running = wait_status(hit, stopped=True, timeout=SETTLE_S)
            if running or not hit:
                self.fail(f"{name} is not stopped after SIGSTOP: {describe(running)}")
            self.action("verified", process=name, effect="stopped", pids=[m.pid for m in hit])

    def restore(self) -> None:
        for name in self._picked or []:
            p = self.proc(name)
            members = self._paused.pop(name, []) + p.members()
            if not members:
                continue
            send(members, signal.SIGCONT)
            self.action("signal", process=name, signal="SIGCONT", pid=p.pid, tree=[m.pid for m in members])
            stopped = wait_status(members, stopped=False, timeout=SETTLE_S)
            if stopped:
                self.fail(f"{name} is still stopped after SIGCONT: {describe(stopped)}")
            self.action("verified", process=name, effect="running")


class RestartParams(ProcessParams):
    grace: Duration = Field(5.0, description="SIGTERM, then SIGKILL after this long")
    downtime: Duration = Field(0.0, description="wait this long between stop and start")


class ProcessRestart(ProcessFault):
    """Stop the process tree (SIGTERM, SIGKILL after `grace`), check it is gone, start it
    again after `downtime` and check it is ready."""

    type = "process.restart"
    Params = RestartParams

    def inject(self) -> None:
        for name in self.picked():
            self.members(name, "restart")
        self.steps.start(self._restart, f"{self.name}-restart", self.report_step_error)

    def _restart(self) -> None:
        for name in self.picked():
            self.stop_tree(name, self.params.grace)
        if self.steps.sleep(self.params.downtime):
            for name in self.picked():
                self.restart(name, reason="restart")
class CrashLoopParams(ProcessParams):
    kills: int = Field(3, ge=1, description="how many times the process is killed")
    signal: SignalName = "SIGKILL"
    exit_timeout: Duration = Field(10.0, description="each kill must take effect within this long")
    restart_after: Duration = Field(1.0, description="a supervisor restarts it this long after each kill")
    kill_after: Duration = Field(1.0, description="each restarted process lives this long")


class ProcessCrashLoop(ProcessFault):
    """Kill the process, restart it, kill it again: `kills` times, then leave it running."""

    type = "process.crash_loop"
    Params = CrashLoopParams

    def inject(self) -> None:
        sig = signal.Signals[self.params.signal]
        for name in self.picked():
            self.take_down(name, sig, self.params.exit_timeout)
        self.action("crash", kill=1, of=self.params.kills)
        self.steps.start(self._loop, f"{self.name}-crash-loop", self.report_step_error)

    def _loop(self) -> None:
        sig = signal.Signals[self.params.signal]
        for n in range(2, self.params.kills + 2):
            if not self.steps.sleep(self.params.restart_after):
                return
            for name in self.picked():
                self.restart(name, reason="crash_loop")
            if n > self.params.kills or not self.steps.sleep(self.params.kill_after):
                return
            for name in self.picked():
                self.take_down(name, sig, self.params.exit_timeout)
            self.action("crash", kill=n, of=self.params.kills)
