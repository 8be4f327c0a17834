"""`aftershock cleanup` acts only on ledger entries it can trust: signed by this user's
harness for that run, with addresses inside the safety boundary, and process groups whose
leader still has the recorded start time.

Real processes (own process groups) stand in as "unrelated" victims; a crafted entry must
leave them alive. A crafted Toxiproxy address outside loopback is refused before any
connect (the end-to-end CLI case runs in a network namespace with only loopback).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.fault import UserError
from harness.core.processes import process_start_time
from harness.engine.ledger import Ledger, read_ledger, replay, stale_ledgers
from harness.engine.ledger_trust import address_refusal, key_path, ledger_key, sign_entry

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = "10.1.2.3"


@pytest.fixture(autouse=True)
def own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERSHOCK_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def victim() -> Iterator[subprocess.Popen]:
    """A process in its own group that no ledger entry of ours ever started."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def alive(proc: subprocess.Popen) -> bool:
    time.sleep(0.1)
    return proc.poll() is None


def dead_run(directory: Path, run_id: str, *entries: dict, allowed: tuple[str, ...] = ()) -> Path:
    """A signed ledger as a SIGKILLed harness leaves it: never closed, its owner pid not running."""
    directory.mkdir(parents=True, exist_ok=True)
    opening = {"op": "open", "run": run_id, "pid": 2**22 + 7, "start_time": 1, "allowed_hosts": list(allowed)}
    path = directory / f"{run_id}.jsonl"
    path.write_text("".join(json.dumps(sign_entry(e, run_id, ledger_key())) + "\n" for e in (opening, *entries)))
    return path


def test_a_signed_entry_of_a_process_the_run_started_is_killed(tmp_path: Path, victim: subprocess.Popen) -> None:
    ledger = Ledger(tmp_path, "run-a")  # the harness's own writer: signs every line
    ledger.process_started("target", victim.pid)
    actions = replay(read_ledger(ledger.path))
    assert actions == [f"process target (pid {victim.pid}): killed"]
    assert not alive(victim)


def test_crafted_entries_are_left_alone_and_reported(tmp_path: Path, victim: subprocess.Popen) -> None:
    path = dead_run(tmp_path, "run-b")
    with path.open("a") as f:  # what someone else drops into the file: no valid signature
        f.write(json.dumps({"op": "process", "id": "x", "pid": victim.pid, "start_time": None}) + "\n")
        f.write(json.dumps({"op": "route", "id": "r", "api": f"http://{OUTSIDE}:8474", "proxy": "p",
                            "mac": "0" * 64}) + "\n")
    left = read_ledger(path)
    assert left.processes == [] and left.routes == []
    actions = replay(left)
    assert actions == [
        "line 2: left alone: not signed by this user's aftershock for run run-b",
        "line 3: left alone: not signed by this user's aftershock for run run-b",
    ]
    assert alive(victim)


def test_a_signed_process_without_or_with_another_start_time_is_not_killed(tmp_path: Path,
                                                                            victim: subprocess.Popen) -> None:
    path = dead_run(tmp_path, "run-c",
                    {"op": "process", "id": "none", "pid": victim.pid, "start_time": None},
                    {"op": "process", "id": "reused", "pid": victim.pid, "start_time": process_start_time(victim.pid) - 5},
                    {"op": "process", "id": "group0", "pid": 0, "start_time": 1})
    actions = replay(read_ledger(path))
    assert f"process none (pid {victim.pid}): not killed: the ledger has no start time for it" in actions[0]
    assert f"process reused (pid {victim.pid}): not killed: the pid now belongs to another process" in actions[1]
    assert "process group0 (pid 0): not killed" in actions[2]
    assert alive(victim)


def test_entries_bind_to_their_run_and_to_their_content(tmp_path: Path, victim: subprocess.Popen) -> None:
    entry = {"op": "process", "id": "t", "pid": victim.pid, "start_time": process_start_time(victim.pid)}
    other = dead_run(tmp_path / "a", "run-other", entry)
    moved = dead_run(tmp_path / "b", "run-d")
    with moved.open("a") as f:  # a genuine line of another run, copied over
        f.write(other.read_text().splitlines()[1] + "\n")
        forged = sign_entry(entry, "run-d", ledger_key())
        forged["pid"] = os.getpid()  # edited after signing
        f.write(json.dumps(forged) + "\n")
    left = read_ledger(moved)
    assert left.processes == [] and len(left.rejected) == 2
    assert alive(victim)


def test_signed_addresses_outside_the_boundary_are_not_contacted(tmp_path: Path) -> None:
    path = dead_run(tmp_path, "run-e",
                    {"op": "route", "id": "r", "api": f"http://{OUTSIDE}:8474", "proxy": "p"},
                    {"op": "container", "id": "c", "name": "n", "run": "run-e", "docker_host": f"tcp://{OUTSIDE}:2375"},
                    {"op": "fault", "id": "f", "type": "network.latency",
                     "record": {"api_url": f"http://{OUTSIDE}:8474", "proxy": "p", "toxic": "t"}})
    actions = replay(read_ledger(path))
    assert len(actions) == 3
    assert all(f"not contacted: {OUTSIDE} is outside loopback" in a for a in actions), actions


def test_the_runs_own_allowed_hosts_open_the_check(tmp_path: Path) -> None:
    route = {"op": "route", "id": "r", "api": "http://127.0.0.1:1", "proxy": "p"}
    far = {"op": "route", "id": "far", "api": "http://10.9.9.9:8474", "proxy": "q"}
    path = dead_run(tmp_path, "run-f", route, allowed=("10.9.9.9",))
    left = read_ledger(path)
    assert left.allowed_hosts == ["10.9.9.9"]  # from the signed open entry
    assert address_refusal(far, left.allowed_hosts) is None  # checked only: never contacted here
    assert "not contacted" in address_refusal(far, [])
    assert replay(left) == ["proxy p on http://127.0.0.1:1: proxy server gone (nothing left on it)"]


def test_cleanup_closes_what_it_replayed_with_a_signed_line(tmp_path: Path) -> None:
    path = dead_run(tmp_path, "run-g")
    (left,) = stale_ledgers(tmp_path)
    replay(left)
    assert stale_ledgers(tmp_path) == [] and read_ledger(path).closed


def test_a_key_others_can_read_or_write_signs_nothing(tmp_path: Path) -> None:
    ledger_key()
    key_path().chmod(0o644)
    with pytest.raises(UserError, match="chmod 600"):
        ledger_key()
    key_path().chmod(0o600)
    assert len(ledger_key()) == 32


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"),
                    reason="needs root and unshare(1) for a network namespace without a route out")
def test_cleanup_command_with_a_crafted_ledger(tmp_path: Path, victim: subprocess.Popen) -> None:
    reports = tmp_path / "reports"
    (reports / ".ledger").mkdir(parents=True)
    (reports / ".ledger" / "evil.jsonl").write_text(
        json.dumps({"op": "open", "run": "evil", "pid": 2**22 + 7, "start_time": 1}) + "\n"
        + json.dumps({"op": "route", "id": "r", "api": f"http://{OUTSIDE}:8474", "proxy": "p"}) + "\n"
        + json.dumps({"op": "process", "id": "x", "pid": victim.pid, "start_time": None}) + "\n")
    cmd = f"ip link set lo up && exec {sys.executable} -m harness.cli cleanup --reports '{reports}'"
    r = subprocess.run(["unshare", "-n", "sh", "-c", cmd], capture_output=True, text=True, timeout=60, check=False,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("left alone: not signed") == 3 and "killed" not in r.stdout, r.stdout
    assert alive(victim)


def test_a_run_with_an_unsafe_key_exits_2_with_the_fix(tmp_path: Path) -> None:
    """The key is read when the run opens its ledger, before anything starts: a user error
    (exit 2 naming the fix), not an internal one."""
    ledger_key()
    key_path().chmod(0o644)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""\
name: unsafe-key
target: {url: "http://127.0.0.1:9/", model: m}
load: {users: 1, duration: 2s}
slos: [{name: a, expect: availability >= 99%}]
""")
    r = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario), "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120, check=False, env={**os.environ})
    assert r.returncode == 2, r.stdout + r.stderr
    assert "chmod 600" in r.stderr and "Traceback" not in r.stdout + r.stderr
