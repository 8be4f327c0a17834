"""The CLI's small commands: validate, schema, readiness failures, cleanup with nothing to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_validate_good_and_bad(tmp_path: Path) -> None:
    r = cli("validate", *map(str, sorted((ROOT / "scenarios").glob("*.yaml"))))
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "scenarios/feature-store-latency.yaml").read_text().replace("duration: 20s", "duration: 20 sec"))
    r = cli("validate", str(bad))
    assert r.returncode == 2
    assert f"{bad}:" in r.stderr and "timeline.faults[0].duration" in r.stderr and "invalid duration" in r.stderr
    assert "Traceback" not in r.stderr


def test_schema_is_json_schema_with_fault_types() -> None:
    r = cli("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["title"] == "aftershock scenario"
    titles = {d.get("title") for d in schema["$defs"].values()}
    assert "network.latency" in titles


def test_target_never_ready_shows_log_tail(tmp_path: Path) -> None:
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(
        "name: never-ready\n"
        "target:\n"
        "  start:\n"
        f"    command: [{sys.executable!r}, -c, \"print('booting the model...', flush=True); import time; time.sleep(60)\"]\n"
        "    ready: {path: /health, timeout: 2s}\n"
        "load: {users: 1, duration: 5s, data: {dataset: none.npz}}\n"
        "slos:\n  - {name: avail, expect: availability >= 99%}\n"
    )
    r = cli("run", str(scenario), "-o", str(tmp_path / "reports"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not ready" in r.stderr and "booting the model..." in r.stderr


def test_cleanup_with_nothing_left(tmp_path: Path) -> None:
    r = cli("cleanup", "--reports", str(tmp_path))
    assert r.returncode == 0 and "nothing to clean up" in r.stdout
