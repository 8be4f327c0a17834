"""Child processes the harness starts: own process group, log file, readiness, stop.

Each runs in a new session (its own process group) so a fault can pause, kill or
restart exactly one of them. Signals go to its whole process tree (harness.core.process_tree),
workers that made sessions of their own included, and stopping it takes the tree down.
The readiness check a process passed at start is kept, so a restart can be checked
against the same test.
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
import psutil

from harness.core.fault import UserError
from harness.core.polling import wait_until
from harness.core.process_tree import (
    MARKER_ENV,
    kill_tree_if_same,
    listening_ports,
    marker_of,
    new_marker,
    process_start_time,
    send,
    signal_tree,
    tree_members,
    wait_gone,
)

__all__ = ["ManagedProcess", "free_port", "kill_group_if_same", "process_start_time", "tail"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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
        self.start_time: int | None = None  # of the running leader: a reused pid is not ours
        # inherited by every descendant, however it detaches: finds the whole tree
        self.marker = new_marker()
        # the readiness test it passed at start (argument: timeout), run again after a restart
        self.ready_check: Callable[[float], None] | None = None
        self.ready_timeout: float = 0.0
        # called after every start, restarts by faults included, so the undo ledger
        # always holds the pid that is running now
        self.on_start: Callable[[ManagedProcess], None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {}), MARKER_ENV: self.marker}
        with self.log_path.open("ab") as log:
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, cwd=self.cwd, start_new_session=True,
                )
            except OSError as exc:
                raise UserError(f"cannot start {self.name} ({' '.join(self.argv)}): {exc}") from None
        self.start_time = process_start_time(self.proc.pid)
        if self.on_start is not None:
            self.on_start(self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_http_ready(self, url: str, timeout: float, is_ready: Callable[[httpx.Response], bool] | None = None) -> None:
        """Poll `url` until it answers 2xx; on timeout or early exit, show the log's tail."""
        check = is_ready or (lambda r: r.status_code < 300)
        self.ready_check = lambda t: self.wait_http_ready(url, t, is_ready)
        self.ready_timeout = timeout

        def answered() -> bool:
            try:
                return check(httpx.get(url, timeout=1.0, trust_env=False))  # never via an env HTTP_PROXY
            except httpx.HTTPError:
                return False

        self.wait_until(answered, f"at {url}", timeout)

    def wait_file_ready(self, path: Path, timeout: float, contains: str | None = None) -> None:
        """Wait until the process has written `path` (holding `contains`, when given)."""
        self.ready_check = lambda t: self.wait_file_ready(path, t, contains)
        self.ready_timeout = timeout
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
        def alive_and_ready() -> bool:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise UserError(f"{self.name} exited with code {code} before it was ready; last lines of {self.log_path}:\n{tail(self.log_path)}")
            return ready()

        if wait_until(alive_and_ready, timeout, interval=0.1):
            return
        raise UserError(f"{self.name} was not ready {what} within {timeout:g}s; last lines of {self.log_path}:\n{tail(self.log_path)}")

    def members(self) -> list[psutil.Process]:
        """The live processes of its tree (the leader, descendants, anything with its marker)."""
        return tree_members(self.pid, self.start_time, self.marker)

    def listening_ports(self) -> set[int]:
        return listening_ports(self.members())

    def signal_tree(self, sig: int) -> list[psutil.Process]:
        """Send `sig` to every process of its tree; returns those signalled."""
        if self.proc is None:
            return []
        leader_alive = self.proc.poll() is None  # checked first: its pid is ours until reaped
        hit = signal_tree(self.pid, self.start_time, self.marker, sig)
        if leader_alive:
            try:  # the group too: a member that cleared its environment is still in it
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        return hit

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the whole tree, wait up to `grace`, then SIGKILL what is left. Idempotent."""
        if self.proc is None:
            return
        members = self.members()
        send(members, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        self.signal_tree(signal.SIGTERM)
        deadline = time.monotonic() + grace
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        wait_gone(members, max(0.0, deadline - time.monotonic()))  # its workers may take longer
        self.signal_tree(signal.SIGKILL)  # whatever is left, wherever it moved
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def kill_group_if_same(pgid: int, pid: int, start_time: int | None) -> bool:
    """The old name of `kill_tree_if_same`, for callers not yet moved to it: kills the whole
    tree of `pid`, found by the marker `pid` carries now, only if `pid` is still the
    process started at `start_time` (else its marker could be another run's)."""
    same = start_time is not None and process_start_time(pid) == start_time
    return kill_tree_if_same(pid, start_time, marker_of(pid) if same else None)
