"""The undo ledger: what a run must undo, written *before* it does it.

One JSONL file per run under `<output dir>/.ledger/`. Entries:
  {"op": "open", "run": id, "pid": harness pid, "start_time": ...}
  {"op": "fault", "id": ..., "type": ..., "record": {...}}      before inject
  {"op": "fault_done", "id": ...}                               after revert
  {"op": "process", "id": ..., "pid": ..., "start_time": ...}   after spawn
  {"op": "process_done", "id": ...}                             after stop
  {"op": "route", "id": ..., "api": url, "proxy": name}         after creating a proxy
  {"op": "route_done", "id": ...}                               after deleting it
  {"op": "container", "id": ..., "name": ..., "run": ..., "docker_host": ...}
                                                                before running a container
  {"op": "container_done", "id": ...}                           after removing it
  {"op": "closed"}                                              nothing is left to undo
  {"op": "ended", "left": n}                                    the run ended, n undos failed
An entry is marked done only after its undo succeeded. A harness killed with SIGKILL,
or a run whose undo failed, leaves a file without "closed"; `aftershock cleanup` (and
the start of the next run) replays it: reverts open faults, deletes open proxies, kills
open process groups, removes open containers, marks each undo that worked done, and
closes the file only when nothing is left. Every entry is signed and checked before
cleanup acts on it (harness/engine/ledger_trust.py): entries this user's harness did not write
for this run, addresses outside loopback and the run's allowed hosts, and process groups
whose leader is no longer the process started are reported and left alone.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.process_tree import kill_tree_if_same, marker_of, process_start_time
from harness.engine.ledger_trust import (
    address_refusal,
    ledger_key,
    process_refusal,
    sign_entry,
    signed_by_us,
)

UNDO_FAILED = "could not"  # how a replay action that failed begins ("could not delete: ...")


class Ledger:
    def __init__(self, directory: Path, run_id: str, allowed_hosts: list[str] | tuple[str, ...] = ()) -> None:
        """`allowed_hosts`: the run's safety.allowed_hosts, recorded so cleanup may contact them."""
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{run_id}.jsonl"
        self.run_id = run_id
        self._key = ledger_key()
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")
        self._open: dict[tuple[str, str], dict[str, Any]] = {}  # (op, id) -> entry, until its *_done
        self._append({"op": "open", "run": run_id, "pid": os.getpid(), "start_time": process_start_time(os.getpid()),
                      "allowed_hosts": list(allowed_hosts)})

    def _append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            _track_open(self._open, entry)
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

    def open_entries(self) -> list[dict[str, Any]]:
        """Entries whose undo has not (yet) succeeded, in the order they were written."""
        with self._lock:
            return list(self._open.values())

    def close(self) -> list[dict[str, Any]]:
        """Close the file; "closed" is written only if nothing is left to undo.

        Returns the entries still open: `cleanup` and the next run retry them."""
        left = self.open_entries()
        # "ended": cleanup need not wait for this process to exit (a pytest session runs on)
        self._append({"op": "ended", "left": len(left)} if left else {"op": "closed"})
        with self._lock:
            self._file.close()
        return left


_DONE_OF = {"fault_done": "fault", "process_done": "process", "route_done": "route", "container_done": "container"}


def _track_open(open_entries: dict[tuple[str, str], dict[str, Any]], entry: dict[str, Any]) -> None:
    op = entry.get("op")
    if op in _DONE_OF.values():
        open_entries[(op, entry["id"])] = entry
    elif op in _DONE_OF:
        open_entries.pop((_DONE_OF[op], entry["id"]), None)


def describe_entry(entry: dict[str, Any]) -> str:
    """One line naming what a ledger entry undoes, for the user."""
    op = entry.get("op")
    if op == "fault":
        return f"fault {entry['id']} ({entry.get('type')})"
    if op == "route":
        return f"proxy {entry.get('proxy')} on {entry.get('api')}"
    if op == "container":
        return f"container {entry.get('name')}"
    return f"{op} {entry.get('id')} (pid {entry.get('pid')})"


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
    ended: bool = False  # the run ended with undos left: retry them even while its process lives
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
        elif op == "ended":
            left.ended = True
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

    Each undo that worked is marked done in the file; one that failed stays open, so
    that the next `cleanup` (or run) tries it again. `left.closed` says whether all worked.
    Entries that fail the trust checks are reported and left alone (they stay open).
    `allowed_hosts` (cleanup's --allow-host) adds to the hosts the run itself allowed."""
    from harness.core.registry import fault_types  # late: fault modules import harness pieces

    actions: list[str] = list(left.rejected)
    allowed = [*left.allowed_hosts, *allowed_hosts]
    done: list[dict[str, Any]] = []
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
            done.append({"op": "fault_done", "id": entry["id"]})
        except Exception as exc:  # keep going: one stuck undo must not block the others
            actions.append(f"fault {entry['id']} ({entry['type']}): undo failed: {exc}")
    for entry in left.routes:
        if refusal := address_refusal(entry, allowed):
            actions.append(f"proxy {entry['proxy']} on {entry['api']}: {refusal}")
            continue
        outcome = _delete_route(entry["api"], entry["proxy"], allowed)
        actions.append(f"proxy {entry['proxy']} on {entry['api']}: {outcome}")
        if not outcome.startswith(UNDO_FAILED):
            done.append({"op": "route_done", "id": entry["id"]})
    for entry in left.containers:
        if refusal := address_refusal(entry, allowed):
            actions.append(f"container {entry['name']} ({entry['id']}): {refusal}")
            continue
        outcome = _remove_container(entry, allowed)
        actions.append(f"container {entry['name']} ({entry['id']}): {outcome}")
        if not outcome.startswith(UNDO_FAILED):
            done.append({"op": "container_done", "id": entry["id"]})
    for entry in left.processes:
        if refusal := process_refusal(entry):
            actions.append(f"process {entry['id']} (pid {entry.get('pid')}): {refusal}")
            continue
        killed = kill_tree_if_same(entry["pid"], entry.get("start_time"), entry.get("marker"))
        actions.append(f"process {entry['id']} (pid {entry['pid']}): {'killed' if killed else 'already gone'}")
        done.append({"op": "process_done", "id": entry["id"]})
    left.closed = len(done) == len(left.faults) + len(left.routes) + len(left.containers) + len(left.processes)
    _mark_replayed(left.path, done, left.closed)
    return actions


def _mark_replayed(path: Path, done: list[dict[str, Any]], closed: bool) -> None:
    """Record the undos that worked; "closed" only when nothing is left to retry."""
    key = ledger_key()
    with path.open("a", encoding="utf-8") as f:
        for entry in done:
            f.write(json.dumps(sign_entry({**entry, "by": "cleanup"}, path.stem, key)) + "\n")
        if closed:
            f.write(json.dumps(sign_entry({"op": "closed", "by": "cleanup"}, path.stem, key)) + "\n")
        f.flush()
        os.fsync(f.fileno())


def stale_ledgers(directory: Path) -> list[Leftovers]:
    """Ledgers of runs that ended without closing and whose harness is no longer alive."""
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        left = read_ledger(path)
        if not left.closed and (left.ended or not left.owner_alive()):
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
        return f"{UNDO_FAILED} delete: {exc}"


def _remove_container(entry: dict[str, Any], allowed_hosts: list[str]) -> str:
    from harness.core.containers import remove_leftover

    try:
        return remove_leftover(entry.get("docker_host"), entry["name"], entry["run"], allowed_hosts)
    except Exception as exc:  # noqa: BLE001 (no daemon, say: tell the user, undo the rest)
        return f"{UNDO_FAILED} remove: {exc}"
