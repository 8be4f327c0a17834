"""The pytest face: one item per SLO, the scenario run once, junitxml, bad files as collection errors."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tiny_target import write_dataset

from harness.engine.load.reference_server import ReferenceServer, Reply

ROOT = Path(__file__).resolve().parents[1]


def pytest_run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], check=False, cwd=cwd,
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


def test_aborted_and_errored_runs_fail_every_item(tmp_path: Path) -> None:
    """A run that a stop condition aborted, or that never started, fails all its items, even
    an SLO its few windows would have passed, and each item names the reason and the run dir."""
    write_dataset(tmp_path)
    slos = "slos:\n  - {name: fast enough, expect: p95(latency) < 2s}\n  - {name: some answers, expect: throughput > 0}\n"
    with ReferenceServer(lambda n: Reply(status=500 if n >= 40 else 200)) as srv:
        (tmp_path / "aborts.yaml").write_text(
            f"name: aborts\ntarget: {{url: {srv.url}, protocol: oip-v2, model: m}}\n"
            "load: {users: 2, duration: 20s, window: 0.5s, data: {dataset: rows.npz}}\n"
            + slos + "stop_when:\n  - error_rate > 50% for 1s\n")
        (tmp_path / "never-ready.yaml").write_text(
            "name: never-ready\ntarget: {start: {command: ['{python}', -c, 'raise SystemExit(1)']}, model: m}\n"
            "load: {users: 1, duration: 2s, data: {dataset: rows.npz}}\n" + slos)
        junit = tmp_path / "junit.xml"
        r = pytest_run("aborts.yaml", "never-ready.yaml", "--aftershock-output", str(tmp_path / "reports"),
                       f"--junitxml={junit}", "-p", "no:cacheprovider", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert len(cases) == 4
    for case in cases:
        failure = case.find("failure")
        assert failure is not None, f"{case.get('classname')}::{case.get('name')} passed"
        text = failure.text or failure.get("message", "")
        run_dir = next(p.get("value") for p in case.iter("property") if p.get("name") == "run_dir")
        assert f"run dir: {run_dir}" in text and Path(run_dir).is_dir()
        if "aborts" in run_dir:
            assert "aborted by a stop condition (exit code 3)" in text and "error_rate > 50% for 1s" in text
        else:
            assert "did not complete (error) (exit code 2)" in text and "exited" in text
    assert len(list((tmp_path / "reports" / "aborts").iterdir())) == 1  # one run for both items
