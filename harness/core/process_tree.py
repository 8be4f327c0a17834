"""The whole process tree of a process the harness started, found and signalled as one.

A server's workers may leave its process group and session (BentoML's do, with
setsid): a signal to the group misses them, and once their parent dies they are
re-parented to init and are no longer its descendants. Two links find them all:
the parent-child links while the tree is intact, and a marker in the environment.
Every process the harness starts carries `AFTERSHOCK_PROCESS=<token>`; descendants
inherit it wherever they move, and a token is unique, so a process that carries it is
ours whatever its pid. psutil rather than a /proc walk of our own: it is maintained,
and its Process objects refuse to signal a pid that was reused (create-time check).
"""

from __future__ import annotations

import re
import signal
import uuid
from collections.abc import Iterable

import psutil

from harness.core.polling import wait_until

MARKER_ENV = "AFTERSHOCK_PROCESS"
_MARKER_FORM = re.compile(r"[0-9a-f]{32}")
# a stopped process is "stopped" (SIGSTOP) or "tracing-stop"; both mean it cannot run
STOPPED = {psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP}


def new_marker() -> str:
    return uuid.uuid4().hex


def marker_of(pid: int) -> str | None:
    """The marker a process was started with, None if it has none (or is gone)."""
    try:
        value = psutil.Process(pid).environ().get(MARKER_ENV)
    except (psutil.Error, OSError):
        return None
    return value if value and _MARKER_FORM.fullmatch(value) else None


def process_start_time(pid: int) -> int | None:
    """Kernel start time of a pid (clock ticks since boot): tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def _live(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tree_members(pid: int | None, start_time: int | None, marker: str | None) -> list[psutil.Process]:
    """Live processes of a tree: the leader `pid` (only while it is still the process
    started at `start_time`), every process carrying `marker`, and all their descendants.

    Zombies are left out: they have let go of everything already.
    """
    roots: list[psutil.Process] = []
    if pid is not None and start_time is not None and process_start_time(pid) == start_time:
        try:
            roots.append(psutil.Process(pid))
        except psutil.Error:
            pass
    if marker is not None and _MARKER_FORM.fullmatch(marker):
        for p in psutil.process_iter(["environ"]):
            env = p.info.get("environ") or {}
            if env.get(MARKER_ENV) == marker:
                roots.append(p)
    found: dict[int, psutil.Process] = {}
    for root in roots:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in family:
            if p.pid not in found and _live(p):
                found[p.pid] = p
    return sorted(found.values(), key=lambda p: p.pid)


def send(procs: Iterable[psutil.Process], sig: int) -> list[psutil.Process]:
    """Send `sig` to each process still alive (never to a reused pid); returns those hit."""
    hit = []
    for p in procs:
        try:
            p.send_signal(sig)
            hit.append(p)
        except psutil.Error:
            pass
    return hit


def signal_tree(pid: int | None, start_time: int | None, marker: str | None,
                sig: int) -> list[psutil.Process]:
    """Signal every process of the tree; returns the processes signalled.

    SIGKILL and SIGSTOP freeze the tree first and look again until no new process
    appears, so a supervisor cannot start a replacement worker between the look and
    the signal.
    """
    if sig not in (signal.SIGKILL, signal.SIGSTOP):
        return send(tree_members(pid, start_time, marker), sig)
    frozen: dict[int, psutil.Process] = {}
    for _ in range(10):
        new = [p for p in tree_members(pid, start_time, marker) if p.pid not in frozen]
        if not new:
            break
        send(new, signal.SIGSTOP)
        frozen.update((p.pid, p) for p in new)
    if sig == signal.SIGKILL:
        send(frozen.values(), signal.SIGKILL)
    return [frozen[p] for p in sorted(frozen)]


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited (or is a zombie); returns those still alive."""
    left = list(procs)

    def all_gone() -> bool:
        nonlocal left
        left = [p for p in left if _live(p)]
        return not left

    wait_until(all_gone, timeout, interval=0.02)
    return left


def wait_status(procs: Iterable[psutil.Process], stopped: bool, timeout: float) -> list[psutil.Process]:
    """Wait until every live process is stopped (or, with stopped=False, none is);
    returns the processes that are not yet so."""
    left = list(procs)
    wrong: list[psutil.Process] = []

    def all_right() -> bool:
        nonlocal wrong
        wrong = []
        for p in left:
            try:
                if _live(p) and (p.status() in STOPPED) != stopped:
                    wrong.append(p)
            except psutil.Error:
                pass
        return not wrong

    wait_until(all_right, timeout, interval=0.02)
    return wrong


def listening_ports(procs: Iterable[psutil.Process]) -> set[int]:
    """TCP ports the processes listen on."""
    ports: set[int] = set()
    for p in procs:
        try:
            conns = p.net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports.update(c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN)
    return ports


def still_listening(ports: set[int]) -> set[int]:
    """Which of `ports` some process on this machine still listens on."""
    if not ports:
        return set()
    return {c.laddr.port for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port in ports}


def describe(procs: Iterable[psutil.Process]) -> str:
    """`pid 12 (python -m server) state sleeping, ...` for an error message."""
    out = []
    for p in procs:
        try:
            out.append(f"pid {p.pid} ({' '.join(p.cmdline())[:80]}) {p.status()}")
        except psutil.Error:
            out.append(f"pid {p.pid} (gone)")
    return ", ".join(out) or "none"


def kill_tree_if_same(pid: int, start_time: int | None, marker: str | None) -> bool:
    """SIGKILL what is left of a tree a dead run started; True if anything was alive.

    The leader is only touched if its start time matches (a reused pid is someone
    else's); processes carrying the marker are ours whatever their pid.
    """
    killed = signal_tree(pid, start_time, marker, signal.SIGKILL)
    wait_gone(killed, 5.0)
    return bool(killed)
