"""Child processes the harness starts: own process group, log file, readiness, stop.

Each runs in a new session (its own process group) so a fault can pause, kill or
restart exactly one of them, and stopping it takes its whole group down.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from harness.fault import UserError


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def process_start_time(pid: int) -> int | None:
    """Kernel start time of a pid (clock ticks since boot): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class ManagedProcess:
    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        # called after every start, restarts by faults included, so the undo ledger
        # always holds the pid that is running now
        self.on_start: Callable[[ManagedProcess], None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        with self.log_path.open("ab") as log:
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, cwd=self.cwd, start_new_session=True,
                )
            except OSError as exc:
                raise UserError(f"cannot start {self.name} ({' '.join(self.argv)}): {exc}") from None
        if self.on_start is not None:
            self.on_start(self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_http_ready(self, url: str, timeout: float, is_ready: Callable[[httpx.Response], bool] | None = None) -> None:
        """Poll `url` until it answers 2xx; on timeout or early exit, show the log's tail."""
        check = is_ready or (lambda r: r.status_code < 300)

        def answered() -> bool:
            try:
                return check(httpx.get(url, timeout=1.0, trust_env=False))  # never via an env HTTP_PROXY
            except httpx.HTTPError:
                return False

        self.wait_until(answered, f"at {url}", timeout)

    def wait_file_ready(self, path: Path, timeout: float, contains: str | None = None) -> None:
        """Wait until the process has written `path` (holding `contains`, when given)."""
        def written() -> bool:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return False
            return bool(text) and (contains is None or contains in text)

        what = f"(no {path}" + (f" holding {contains!r})" if contains else ")")
        self.wait_until(written, what, timeout)

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll `ready` until true; on timeout or early exit, show the log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise UserError(f"{self.name} exited with code {code} before it was ready; last lines of {self.log_path}:\n{tail(self.log_path)}")
            if ready():
                return
            time.sleep(0.1)
        raise UserError(f"{self.name} was not ready {what} within {timeout:g}s; last lines of {self.log_path}:\n{tail(self.log_path)}")

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the group, wait up to `grace`, then SIGKILL it. Idempotent."""
        if self.proc is None:
            return
        self.signal_group(signal.SIGCONT)  # a paused process cannot act on SIGTERM
        self.signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self.signal_group(signal.SIGKILL)  # whatever is left in the group
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def kill_group_if_same(pgid: int, pid: int, start_time: int | None) -> bool:
    """SIGKILL a leftover process group, but only if its leader is the process we started."""
    if start_time is not None and process_start_time(pid) not in (None, start_time):
        return False  # the pid was reused by something else
    try:
        os.killpg(pgid, signal.SIGCONT)
        os.killpg(pgid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
