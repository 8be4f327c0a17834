"""The pytest face: one item per SLO, the scenario run once, junitxml, bad files as collection errors."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pytest_run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_collects_one_item_per_slo() -> None:
    r = pytest_run("--collect-only", "-q", "scenarios/")
    assert r.returncode == 0, r.stdout + r.stderr
    items = [line for line in r.stdout.splitlines() if "::" in line]
    assert "scenarios/feature-store-latency.yaml::availability" in items
    assert len([i for i in items if i.startswith("scenarios/feature-store-latency.yaml::")]) == 4
    assert len([i for i in items if i.startswith("scenarios/feature-store-latency-fragile.yaml::")]) == 4


def test_runs_scenario_once_and_writes_junit(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    r = pytest_run("scenarios/feature-store-latency.yaml", "--aftershock-quick", "--aftershock-output",
                   str(tmp_path / "reports"), f"--junitxml={junit}", "-v")
    assert r.returncode == 0, r.stdout + r.stderr
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert len(cases) == 4
    assert len(list((tmp_path / "reports" / "feature-store-latency").iterdir())) == 1  # one run for 4 items
    props = {p.get("name") for p in cases[0].iter("property")}
    assert {"expect", "measured", "run_dir"} <= props


def test_bad_scenario_is_a_collection_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntarget:\n  demo: fraud\nslos:\n  - name: a\n    expect: p95(latency) < 1ms\nload:\n  users: many\n")
    r = pytest_run(str(bad), cwd=tmp_path)
    assert r.returncode == 2
    assert f"{bad}:8:" in r.stdout and "load.users" in r.stdout
