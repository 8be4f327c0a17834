"""The undo ledger: what a run must undo, written *before* it does it.

One JSONL file per run under `<output dir>/.ledger/`. Entries:
  {"op": "open", "run": id, "pid": harness pid, "start_time": ...}
  {"op": "fault", "id": ..., "type": ..., "record": {...}}      before inject
  {"op": "fault_done", "id": ...}                               after revert
  {"op": "process", "id": ..., "pid": ..., "start_time": ..., "marker": ...}
                                                                after spawn (marker: see process_tree)
  {"op": "process_done", "id": ...}                             after stop
  {"op": "route", "id": ..., "api": url, "proxy": name}         after creating a proxy
  {"op": "route_done", "id": ...}                               after deleting it
  {"op": "container", "id": ..., "name": ..., "run": ..., "docker_host": ...}
                                                                before running a container
  {"op": "container_done", "id": ...}                           after removing it
  {"op": "closed"}                                              run ended cleanly
A harness killed with SIGKILL leaves a file without "closed"; `aftershock cleanup`
(and the start of the next run) replays it: reverts open faults, kills open process
groups, removes open containers, and closes the file. Every entry is signed and checked
before cleanup acts on it (harness/ledger_trust.py): entries this user's harness did not
write for this run, addresses outside loopback and the run's allowed hosts, and process
groups whose leader is no longer the process started are reported and left alone.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.ledger_trust import (
    address_refusal,
    ledger_key,
    process_refusal,
    sign_entry,
    signed_by_us,
)
from harness.process_tree import kill_tree_if_same, marker_of, process_start_time


class Ledger:
    def __init__(self, directory: Path, run_id: str, allowed_hosts: list[str] | tuple[str, ...] = ()) -> None:
        """`allowed_hosts`: the run's safety.allowed_hosts, recorded so cleanup may contact them."""
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{run_id}.jsonl"
        self.run_id = run_id
        self._key = ledger_key()
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")
        self._append({"op": "open", "run": run_id, "pid": os.getpid(), "start_time": process_start_time(os.getpid()),
                      "allowed_hosts": list(allowed_hosts)})

    def _append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._file.write(json.dumps(sign_entry(entry, self.run_id, self._key)) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())

    def fault_planned(self, fault_id: str, fault_type: str, record: dict[str, Any]) -> None:
        self._append({"op": "fault", "id": fault_id, "type": fault_type, "record": record})

    def fault_done(self, fault_id: str) -> None:
        self._append({"op": "fault_done", "id": fault_id})

    def process_started(self, proc_id: str, pid: int) -> None:
        self._append({"op": "process", "id": proc_id, "pid": pid, "start_time": process_start_time(pid),
                      "marker": marker_of(pid)})

    def process_done(self, proc_id: str) -> None:
        self._append({"op": "process_done", "id": proc_id})

    def route_created(self, route_id: str, api_url: str, proxy_name: str) -> None:
        self._append({"op": "route", "id": route_id, "api": api_url, "proxy": proxy_name})

    def route_done(self, route_id: str) -> None:
        self._append({"op": "route_done", "id": route_id})

    def container_started(self, container_id: str, name: str, run: str, docker_host: str | None) -> None:
        self._append({"op": "container", "id": container_id, "name": name, "run": run, "docker_host": docker_host})

    def container_done(self, container_id: str) -> None:
        self._append({"op": "container_done", "id": container_id})

    def close(self) -> None:
        self._append({"op": "closed"})
        with self._lock:
            self._file.close()


@dataclass
class Leftovers:
    path: Path
    owner_pid: int | None = None
    owner_start: int | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)  # in injection order
    processes: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    containers: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    allowed_hosts: list[str] = field(default_factory=list)  # the run's, from its signed open entry
    rejected: list[str] = field(default_factory=list)  # lines cleanup will not act on, and why

    def owner_alive(self) -> bool:
        if self.owner_pid is None:
            return False
        now = process_start_time(self.owner_pid)
        return now is not None and (self.owner_start is None or now == self.owner_start)


def read_ledger(path: Path) -> Leftovers:
    left = Leftovers(path)
    faults: dict[str, dict[str, Any]] = {}
    procs: dict[str, dict[str, Any]] = {}
    routes: dict[str, dict[str, Any]] = {}
    containers: dict[str, dict[str, Any]] = {}
    for e in trusted_entries(path, left.rejected):
        op = e.get("op")
        if op == "open":
            left.owner_pid, left.owner_start = e.get("pid"), e.get("start_time")
            left.allowed_hosts = [h for h in e.get("allowed_hosts") or [] if isinstance(h, str)]
        elif op == "fault":
            faults[e["id"]] = e
        elif op == "fault_done":
            faults.pop(e["id"], None)
        elif op == "process":
            procs[e["id"]] = e
        elif op == "process_done":
            procs.pop(e["id"], None)
        elif op == "route":
            routes[e["id"]] = e
        elif op == "route_done":
            routes.pop(e["id"], None)
        elif op == "container":
            containers[e["id"]] = e
        elif op == "container_done":
            containers.pop(e["id"], None)
        elif op == "closed":
            left.closed = True
    left.faults = list(faults.values())
    left.processes = list(procs.values())
    left.routes = list(routes.values())
    left.containers = list(containers.values())
    return left


def trusted_entries(path: Path, rejected: list[str]) -> list[dict[str, Any]]:
    """The entries of `path` this user's harness signed for this run; the others, with
    the reason, go to `rejected`."""
    key = ledger_key(create=False)
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            e = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue  # torn last line after a crash
        if not isinstance(e, dict) or not signed_by_us(e, path.stem, key):
            rejected.append(f"line {number}: left alone: not signed by this user's aftershock for run {path.stem}")
            continue
        out.append(e)
    return out


def replay(left: Leftovers, allowed_hosts: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Undo what a dead run left behind; returns one line per action, for the user.

    `allowed_hosts` (cleanup's --allow-host) adds to the hosts the run itself allowed."""
    from harness.plugins import fault_types  # late: fault modules import harness pieces

    actions: list[str] = list(left.rejected)
    allowed = [*left.allowed_hosts, *allowed_hosts]
    registry = fault_types()
    for entry in reversed(left.faults):
        if refusal := address_refusal(entry, allowed):
            actions.append(f"fault {entry['id']} ({entry['type']}): {refusal}")
            continue
        cls = registry.get(entry["type"])
        if cls is None:
            actions.append(f"cannot undo fault {entry['id']}: type {entry['type']} is not installed")
            continue
        try:
            actions.append(f"fault {entry['id']} ({entry['type']}): {cls.replay_undo(entry['record'])}")
        except Exception as exc:  # keep going: one stuck undo must not block the others
            actions.append(f"fault {entry['id']} ({entry['type']}): undo failed: {exc}")
    for entry in left.routes:
        done = address_refusal(entry, allowed) or _delete_route(entry["api"], entry["proxy"], allowed)
        actions.append(f"proxy {entry['proxy']} on {entry['api']}: {done}")
    for entry in left.containers:
        done = address_refusal(entry, allowed) or _remove_container(entry, allowed)
        actions.append(f"container {entry['name']} ({entry['id']}): {done}")
    for entry in left.processes:
        if refusal := process_refusal(entry):
            actions.append(f"process {entry['id']} (pid {entry.get('pid')}): {refusal}")
            continue
        killed = kill_tree_if_same(entry["pid"], entry.get("start_time"), entry.get("marker"))
        actions.append(f"process {entry['id']} (pid {entry['pid']}): {'killed' if killed else 'already gone'}")
    with left.path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(sign_entry({"op": "closed", "by": "cleanup"}, left.path.stem, ledger_key())) + "\n")
    left.closed = True
    return actions


def stale_ledgers(directory: Path) -> list[Leftovers]:
    """Ledgers of runs that ended without closing and whose harness is no longer alive."""
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        left = read_ledger(path)
        if not left.closed and not left.owner_alive():
            out.append(left)
    return out


def _delete_route(api_url: str, proxy_name: str, allowed_hosts: list[str]) -> str:
    from faults.proxy.client import ToxiproxyClient, ToxiproxyError, ToxiproxyUnreachable

    try:
        client = ToxiproxyClient(api_url, timeout=2.0, allowed_hosts=allowed_hosts)
        return "deleted" if client.delete_proxy(proxy_name) else "already gone"
    except ToxiproxyUnreachable:
        return "proxy server gone (nothing left on it)"
    except ToxiproxyError as exc:
        return f"could not delete: {exc}"


def _remove_container(entry: dict[str, Any], allowed_hosts: list[str]) -> str:
    from harness.containers import remove_leftover

    try:
        return remove_leftover(entry.get("docker_host"), entry["name"], entry["run"], allowed_hosts)
    except Exception as exc:  # noqa: BLE001 (no daemon, say: tell the user, undo the rest)
        return f"could not remove: {exc}"
